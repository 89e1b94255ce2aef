// annotations.cpp - the distnode annotations of a program.
#include "jit/annotations.h"

#include "llvm/IR/Constants.h"
#include "llvm/IR/Function.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/Module.h"

#include <algorithm>

namespace distnode::jit {

using llvm::dyn_cast;
using llvm::dyn_cast_or_null;

std::string cString(const llvm::Value *v) {
  auto *gv = dyn_cast_or_null<llvm::GlobalVariable>(v ? v->stripPointerCasts() : nullptr);
  if (!gv || !gv->hasInitializer())
    return "";
  auto *data = dyn_cast<llvm::ConstantDataSequential>(gv->getInitializer());
  if (!data || !data->isString())
    return "";
  return data->isCString() ? data->getAsCString().str() : data->getAsString().str();
}

std::map<const llvm::Function *, FunctionAnnotations>
readAnnotations(const llvm::Module &m, std::vector<Diagnostic> &errors) {
  std::map<const llvm::Function *, FunctionAnnotations> result;
  const llvm::GlobalVariable *table = m.getNamedGlobal("llvm.global.annotations");
  if (!table || !table->hasInitializer())
    return result;
  auto *array = dyn_cast<llvm::ConstantArray>(table->getInitializer());
  if (!array)
    return result;
  for (const llvm::Use &entry : array->operands()) {
    auto *fields = dyn_cast<llvm::ConstantStruct>(entry.get());
    if (!fields || fields->getNumOperands() < 4)
      continue;
    const llvm::Value *target = fields->getOperand(0)->stripPointerCasts();
    std::string text = cString(fields->getOperand(1));
    SourceLoc loc{cString(fields->getOperand(2)), 0};
    if (auto *line = dyn_cast<llvm::ConstantInt>(fields->getOperand(3)))
      loc.line = static_cast<unsigned>(line->getZExtValue());
    if (text.rfind("dist_", 0) != 0)
      continue; // the program's own annotations
    auto *fn = dyn_cast<llvm::Function>(target);
    if (!fn) {
      errors.push_back({loc, "",
                        "annotation `" + text + "` is on `" + target->getName().str() +
                            "`, which is not a function; dist.h's function annotations "
                            "go on function declarations"});
      continue;
    }
    FunctionAnnotations &a = result[fn];
    if (a.loc.file.empty())
      a.loc = loc;
    auto fail = [&](const std::string &message) {
      errors.push_back({loc, fn->getName().str(), message});
    };
    if (text == "dist_local") {
      a.local = true;
    } else if (text == "dist_loadbalanced") {
      a.load_balanced = true;
    } else if (text == "dist_pure_extern") {
      a.pure_extern = true;
    } else if (text.rfind("dist_pin:", 0) == 0) {
      std::string node = text.substr(9);
      if (node.empty())
        fail("DIST_PIN(\"\") names no node; write DIST_PIN(\"node-name\") with a node of "
             "cluster.yaml");
      else if (fn->getName() == "main")
        fail("`main` runs on the entry node; DIST_PIN does not apply to it (name the entry "
             "node with `entry:` in cluster.yaml)");
      else if (a.pin && *a.pin != node)
        fail("pinned twice, to `" + *a.pin + "` and `" + node + "`; keep one DIST_PIN");
      else
        a.pin = node;
    } else if (text.rfind("dist_in:", 0) == 0 || text.rfind("dist_out:", 0) == 0 ||
               text.rfind("dist_inout:", 0) == 0) {
      auto first = text.find(':');
      auto second = text.find(':', first + 1);
      std::string kind = text.substr(5, first - 5);
      BufferAnnotation b;
      b.dir = kind == "in" ? BufferDir::In : kind == "out" ? BufferDir::Out : BufferDir::InOut;
      b.loc = loc;
      if (second == std::string::npos) {
        fail("malformed buffer annotation `" + text + "`; write DIST_IN(param, count)");
        continue;
      }
      b.param = text.substr(first + 1, second - first - 1);
      b.count = text.substr(second + 1);
      std::string upper = kind == "in" ? "IN" : kind == "out" ? "OUT" : "INOUT";
      b.spelling = "DIST_" + upper + "(" + b.param + ", " + b.count + ")";
      auto same = std::find_if(a.buffers.begin(), a.buffers.end(),
                               [&](const BufferAnnotation &o) { return o.param == b.param; });
      if (same == a.buffers.end()) {
        a.buffers.push_back(std::move(b));
      } else if (same->count != b.count) {
        fail("`" + b.param + "` is annotated twice with different counts, " + same->spelling +
             " and " + b.spelling + "; keep one annotation (DIST_INOUT for a buffer read and " +
             "written)");
      } else if (same->dir != b.dir) { // DIST_IN and DIST_OUT of one buffer: read and written
        same->dir = BufferDir::InOut;
        same->spelling += " and " + b.spelling;
      } // the same annotation again (on another declaration, say): nothing new

    } else {
      fail("unknown distnode annotation `" + text + "`; see include/dist.h for the list");
    }
  }
  return result;
}

} // namespace distnode::jit
