// logging.cpp - distnode's own log (spdlog).
#include "node/logging.h"

#include "llvm/Support/Error.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace distnode::node {

llvm::Error setupLogging(const std::string &node, const std::string &level,
                         const std::string &file) {
  auto parsed = spdlog::level::from_str(level);
  // from_str answers `off` for anything it does not know; only "off" itself means that.
  if (parsed == spdlog::level::off && level != "off")
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--log-level `" + level + "` is not a level; use one of " +
                                       kLogLevels);
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (file.empty())
      logger =
          std::make_shared<spdlog::logger>(node, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    else
      logger = std::make_shared<spdlog::logger>(
          node, std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  } catch (const spdlog::spdlog_ex &e) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "--log-file " + file + ": " + e.what());
  }
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%n] %l: %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return llvm::Error::success();
}

} // namespace distnode::node
