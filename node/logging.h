// logging.h - distnode's own log (spdlog), apart from the program's stdout and stderr.
//
// Every line carries the time, the node's name and the level:
//   2026-12-02 02:10:00.123 [n1] info: placement epoch 2 applied (1 unit moved)
// By default only warnings and errors are logged, to stderr; --log-level and --log-file
// change that. distnode's one-line user errors ("distnode: error: ...") are not log lines:
// they are printed as they are, whatever the level.
#ifndef DISTNODE_NODE_LOGGING_H
#define DISTNODE_NODE_LOGGING_H

#include <string>

namespace llvm {
class Error;
} // namespace llvm

namespace distnode::node {

/// Levels accepted by --log-level, most verbose first.
inline constexpr const char *kLogLevels = "trace, debug, info, warn, error, off";

/// Makes spdlog's default logger write lines tagged with `node` at `level` and above, to
/// `file` (appended to) or, if it is empty, to stderr. Fails with a one-line message for an
/// unknown level or a file that cannot be opened.
[[nodiscard]] llvm::Error setupLogging(const std::string &node, const std::string &level,
                                       const std::string &file);

} // namespace distnode::node

#endif
