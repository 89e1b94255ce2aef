/* dist.h - placement annotations for programs run by distnode.
 *
 * This is the only header a program includes. Every macro expands to a clang attribute that
 * distnode reads back from the bitcode (functions: `annotate`, found in llvm.global.annotations;
 * types: `btf_decl_tag`, found in debug info). Under any other compiler, or when the attribute
 * is unknown, the macros expand to nothing, so the same sources still build natively.
 *
 *   DIST_LOCAL            function: never called remotely; runs on the caller's node.
 *   DIST_LOADBALANCED     function: replicated on several nodes behind a load balancer; must not
 *                         touch mutable globals or do I/O.
 *   DIST_PIN("node")      function: always runs on the named node.
 *   DIST_NPIN             struct/typedef: values never cross a node; functions with it in their
 *                         signature run on the caller's node.
 *   DIST_GPIN             struct/typedef: all functions handling it run on one node; pointers to
 *                         it cross nodes as opaque handles.
 *   DIST_IN(p, n)         function: pointer parameter p is an array of n elements, copied in.
 *   DIST_OUT(p, n)        ... copied out after the call.
 *   DIST_INOUT(p, n)      ... copied in and out.
 *                         n is the name of an integer parameter or a decimal constant.
 *   DIST_PURE_EXTERN      declaration of an external function: it has no side effects, so a
 *                         function calling it may run on any node.
 */
#ifndef DIST_H
#define DIST_H

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(annotate)
#define DIST_ANNOTATE_(text) __attribute__((annotate(text)))
#endif
#if __has_attribute(btf_decl_tag)
#define DIST_TYPE_TAG_(text) __attribute__((btf_decl_tag(text)))
#endif
#endif
#ifndef DIST_ANNOTATE_
#define DIST_ANNOTATE_(text)
#endif
#ifndef DIST_TYPE_TAG_
#define DIST_TYPE_TAG_(text)
#endif

#define DIST_LOCAL DIST_ANNOTATE_("dist_local")
#define DIST_LOADBALANCED DIST_ANNOTATE_("dist_loadbalanced")
#define DIST_PIN(node) DIST_ANNOTATE_("dist_pin:" node)
#define DIST_IN(p, n) DIST_ANNOTATE_("dist_in:" #p ":" #n)
#define DIST_OUT(p, n) DIST_ANNOTATE_("dist_out:" #p ":" #n)
#define DIST_INOUT(p, n) DIST_ANNOTATE_("dist_inout:" #p ":" #n)
#define DIST_PURE_EXTERN DIST_ANNOTATE_("dist_pure_extern")

#define DIST_NPIN DIST_TYPE_TAG_("dist_npin")
#define DIST_GPIN DIST_TYPE_TAG_("dist_gpin")

#endif /* DIST_H */
