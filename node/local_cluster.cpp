// local_cluster.cpp - `distnode --local N`: an N-node cluster of processes on loopback.
#include "node/local_cluster.h"

#include "node/cluster_config.h"
#include "node/cluster_node.h"
#include "transport/ports.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace distnode::node {

namespace {

using Clock = std::chrono::steady_clock;

// Signals arrive here and are read by the main loop.
int signal_pipe[2] = {-1, -1};

void onSignal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(signal_pipe[1], &b, 1);
  errno = saved;
}

struct Child {
  std::string name;
  pid_t pid = -1;
  int out = -1, err = -1; // pipes of the prefixed nodes; -1 for the entry (inherited)
  std::string out_partial, err_partial;
  bool exited = false;
  int status = 0;
};

// Writes complete lines of `data` with a prefix; keeps an incomplete last line in `partial`.
void forwardLines(const std::string &prefix, std::string &partial, const char *data, size_t n,
                  FILE *to) {
  partial.append(data, n);
  size_t start = 0, nl;
  while ((nl = partial.find('\n', start)) != std::string::npos) {
    std::fprintf(to, "%s%.*s\n", prefix.c_str(), static_cast<int>(nl - start),
                 partial.data() + start);
    start = nl + 1;
  }
  partial.erase(0, start);
  std::fflush(to);
}

std::string describe(int status) {
  if (WIFEXITED(status))
    return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

pid_t spawnNode(const std::vector<std::string> &argv, int out_fd, int err_fd) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  // Child: die with the launcher; default signal dispositions; our pipes as stdout/stderr.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE})
    std::signal(sig, SIG_DFL);
  if (out_fd >= 0) {
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
  }
  std::vector<char *> args;
  for (const auto &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  execv("/proc/self/exe", args.data());
  std::fprintf(stderr, "distnode: error: cannot start a node: %s\n", std::strerror(errno));
  _exit(127);
}

} // namespace

int runLocalCluster(const LocalClusterOptions &options) {
  // Held until the cluster ends: a cluster starting at the same time cannot take them.
  transport::ReservedPorts reserved = transport::reserveLoopbackPorts(2 * options.nodes);
  const std::vector<int> &ports = reserved.ports; // call, control
  if (ports.empty()) {
    std::cerr << "distnode: error: cannot find " << 2 * options.nodes
              << " free TCP ports on 127.0.0.1 (20000-32000)\n";
    return 2;
  }
  char dir_template[] = "/tmp/distnode-local-XXXXXX";
  if (!mkdtemp(dir_template)) {
    std::cerr << "distnode: error: cannot create a temporary directory: " << std::strerror(errno)
              << "\n";
    return 2;
  }
  std::string dir = dir_template;
  std::string config = dir + "/cluster.yaml";
  // Admin sockets are ipc:// files in the directory, which only this user can enter (0700).
  std::string yaml = localClusterYaml(ports, options.join_timeout, dir, options.coordinator);
  std::ofstream(config) << yaml;
  if (!options.cluster_out.empty()) {
    std::ofstream out(options.cluster_out);
    out << yaml;
    if (!out) {
      std::cerr << "distnode: error: --cluster-out: cannot write " << options.cluster_out << ": "
                << std::strerror(errno) << "\n";
      return 2;
    }
  }

  if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::cerr << "distnode: error: pipe: " << std::strerror(errno) << "\n";
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<Child> children(options.nodes);
  for (int i = 0; i < options.nodes; ++i) {
    Child &c = children[i];
    c.name = "n" + std::to_string(i);
    std::vector<std::string> argv = {"distnode", "--join", config, "--name", c.name};
    argv.insert(argv.end(), options.node_flags.begin(), options.node_flags.end());
    if (i == 0)
      argv.insert(argv.end(), options.entry_flags.begin(), options.entry_flags.end());
    if (i == options.coordinator)
      argv.insert(argv.end(), options.coordinator_flags.begin(), options.coordinator_flags.end());
    // Messages name the cluster, not the temporary file; and the entry's line says why the
    // cluster failed, where the members' would repeat it.
    argv.push_back("--under-launcher");
    argv.push_back(options.bitcode);
    argv.push_back("--");
    argv.insert(argv.end(), options.program_args.begin(), options.program_args.end());
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (i > 0 && (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)) {
      std::cerr << "distnode: error: pipe: " << std::strerror(errno) << "\n";
      return 2;
    }
    std::fflush(nullptr);
    c.pid = spawnNode(argv, out[1], err[1]);
    if (i > 0) {
      close(out[1]);
      close(err[1]);
      c.out = out[0];
      c.err = err[0];
    }
  }

  auto signalAll = [&](int sig) {
    for (auto &c : children)
      if (!c.exited)
        kill(c.pid, sig);
  };
  int result = -1;     // the exit code once decided
  int interrupted = 0; // the signal that stopped us
  const auto never = Clock::time_point::max();
  Clock::time_point kill_at = never; // when stragglers get SIGKILL
  // A member that failed while the entry node runs: the entry has heard why (a member the
  // program crashed tells it the signal and the function; one that stops on the entry's word
  // exits 2) and reports it, with its exit code. The launcher decides only if the entry has not
  // ended within a grace period, or ended with 0.
  const Child *failed_member = nullptr;
  Clock::time_point entry_reports_by = never;
  auto decideMemberFailure = [&](const Child &c) {
    const int status = c.status;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 2)) // 2: the node said why itself
      std::cerr << "distnode: error: node `" << c.name << "` stopped (" << describe(status)
                << ") while the program ran; stopping the cluster\n";
    // Killed by a signal: the code a shell gives a native program killed by it.
    result = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 2;
    failed_member = nullptr;
    entry_reports_by = never;
    signalAll(SIGTERM);
    kill_at = Clock::now() + std::chrono::seconds(5);
  };
  auto toldTheEntry = [](int status) { // a crash signal: the member's handler told the entry
    if (WIFEXITED(status))
      return WEXITSTATUS(status) == 2;
    return std::find(std::begin(kCrashSignals), std::end(kCrashSignals), WTERMSIG(status)) !=
           std::end(kCrashSignals);
  };
  auto running = [&] {
    for (auto &c : children)
      if (!c.exited || c.out >= 0 || c.err >= 0)
        return true;
    return false;
  };
  // Once every node has exited, their output is read for at most 2 s more: a process they
  // left behind (a child the program made with fork(), say) may hold the pipes open.
  Clock::time_point pipes_close_by = never;
  auto closeLeftPipes = [&] {
    bool all_exited =
        std::all_of(children.begin(), children.end(), [](const Child &c) { return c.exited; });
    if (!all_exited)
      return;
    if (pipes_close_by == never)
      pipes_close_by = Clock::now() + std::chrono::seconds(2);
    if (Clock::now() < pipes_close_by)
      return;
    for (auto &c : children)
      for (int *fd : {&c.out, &c.err})
        if (*fd >= 0) {
          close(*fd);
          *fd = -1;
        }
  };

  while (running()) {
    std::vector<pollfd> fds = {{signal_pipe[0], POLLIN, 0}};
    std::vector<std::pair<Child *, bool>> owners = {{nullptr, false}};
    for (auto &c : children) {
      if (c.out >= 0) {
        fds.push_back({c.out, POLLIN, 0});
        owners.push_back({&c, false});
      }
      if (c.err >= 0) {
        fds.push_back({c.err, POLLIN, 0});
        owners.push_back({&c, true});
      }
    }
    int wait_ms = 1000;
    for (Clock::time_point at : {kill_at, entry_reports_by})
      if (at != never) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now());
        wait_ms = std::min(wait_ms, std::max<int>(0, static_cast<int>(left.count())));
      }
    int ready = poll(fds.data(), fds.size(), wait_ms);
    if (ready < 0 && errno != EINTR)
      break;
    for (size_t k = 1; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      Child &c = *owners[k].first;
      bool is_err = owners[k].second;
      char buffer[65536];
      ssize_t n = read(fds[k].fd, buffer, sizeof buffer);
      std::string &partial = is_err ? c.err_partial : c.out_partial;
      if (n > 0) {
        forwardLines("[" + c.name + "] ", partial, buffer, static_cast<size_t>(n),
                     is_err ? stderr : stdout);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (!partial.empty())
          forwardLines("[" + c.name + "] ", partial, "\n", 1, is_err ? stderr : stdout);
        close(fds[k].fd);
        (is_err ? c.err : c.out) = -1;
      }
    }
    unsigned char sigs[64];
    ssize_t got = read(signal_pipe[0], sigs, sizeof sigs);
    for (ssize_t k = 0; k < got; ++k)
      if (sigs[k] != SIGCHLD && !interrupted) {
        interrupted = sigs[k];
        signalAll(SIGTERM);
        kill_at = Clock::now() + std::chrono::seconds(5);
      }
    // Reap whatever has exited.
    for (auto &c : children) {
      if (c.exited)
        continue;
      int status = 0;
      pid_t r = waitpid(c.pid, &status, WNOHANG);
      if (r != c.pid)
        continue;
      c.exited = true;
      c.status = status;
      bool entry = &c == &children[0];
      if (entry && failed_member) {
        // The entry ended well (exit code 0): the member's failure is the news. One that died
        // of a signal (a crash, which it told the members of first) is reported below.
        if (result < 0 && !interrupted && WIFEXITED(status) && WEXITSTATUS(status) == 0)
          decideMemberFailure(*failed_member);
        failed_member = nullptr;
        entry_reports_by = never;
      }
      if (entry && result < 0 && !interrupted) {
        result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        // A program whose reader went away (`app | head`) dies of SIGPIPE silently, as natively.
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGPIPE)
          std::cerr << "distnode: error: the entry node `n0` died: " << describe(status) << "\n";
        // Normally the others got Shutdown and are exiting; if the entry failed before, they
        // wait in vain. SIGTERM makes a member stop quietly either way.
        signalAll(SIGTERM);
        if (kill_at == never)
          kill_at = Clock::now() + std::chrono::seconds(5);
      } else if (!entry && result < 0 && !interrupted && !failed_member &&
                 !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        if (toldTheEntry(status) && !children[0].exited) {
          // A crash: the entry stops the others (waiting at most 1 s for them) and reports it.
          // Exit 2: the member may have stopped on the entry's word, which the entry then
          // reports; or for a reason of its own, which the entry would hear only after its
          // heartbeat timeout (3 s by default), so the launcher does not wait that long.
          failed_member = &c;
          entry_reports_by = Clock::now() + (WIFSIGNALED(status) ? std::chrono::milliseconds(3000)
                                                                 : std::chrono::milliseconds(1500));
        } else {
          decideMemberFailure(c);
        }
      }
    }
    if (failed_member && Clock::now() >= entry_reports_by)
      decideMemberFailure(*failed_member);
    closeLeftPipes();
    if (kill_at != never && Clock::now() >= kill_at) {
      for (auto &c : children)
        if (!c.exited)
          std::cerr << "distnode: warning: node `" << c.name
                    << "` did not stop within 5 s of the cluster's end; killed it\n";
      signalAll(SIGKILL);
      kill_at = never;
    }
  }
  std::filesystem::remove_all(dir);
  if (interrupted)
    return 128 + interrupted;
  return result < 0 ? 2 : result;
}

} // namespace distnode::node
