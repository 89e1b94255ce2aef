// subprocess.h - runs a real process for a test and collects what it printed.
#ifndef DISTNODE_TESTS_SUPPORT_SUBPROCESS_H
#define DISTNODE_TESTS_SUPPORT_SUBPROCESS_H

#include <chrono>
#include <future>
#include <string>
#include <vector>

namespace distnode::testing {

/// What a finished process did.
struct ProcessResult {
  int exit_code = -1;     ///< exit status, or -1 if it died of a signal
  int signal = 0;         ///< the signal that ended it, or 0
  bool timed_out = false; ///< it was killed because it outlived the timeout
  std::string out;        ///< everything written to stdout
  std::string err;        ///< everything written to stderr
};

/// Runs `argv` (argv[0] is a path) with stdin from /dev/null, waits for it to exit and returns
/// its output. A process still running after `timeout` is killed; it is always reaped.
ProcessResult runProcess(const std::vector<std::string> &argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// Runs `argv` on another thread; get() waits for it like runProcess.
std::future<ProcessResult>
startProcess(std::vector<std::string> argv,
             std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago (transport/ports.h).
std::vector<int> freeLoopbackPorts(int n);

/// Writes `text` to a new file under the test's temporary directory and returns its path.
std::string writeTempFile(const std::string &name, const std::string &text);

/// The lines of `text` (without their newlines; a final line without one is included).
std::vector<std::string> splitLines(const std::string &text);

} // namespace distnode::testing

#endif
