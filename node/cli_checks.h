// cli_checks.h - checks of command-line values shared by distnode and distctl (CLI11).
#ifndef DISTNODE_NODE_CLI_CHECKS_H
#define DISTNODE_NODE_CLI_CHECKS_H

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace distnode::node {

/// A whole number from `least` to `most`, rewritten in decimal: use it with ->transform(). (CLI11's
/// own checks print ranges such as 0 to 1.8e308 in full, or say "Could not convert".)
inline CLI::Validator wholeNumber(long least, long most) {
  const std::string range = std::to_string(least) + " to " + std::to_string(most);
  return CLI::Validator(
      [least, most, range](std::string &text) -> std::string {
        char *end = nullptr;
        errno = 0;
        const long value = std::strtol(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE || value < least || value > most)
          return "`" + text + "` is not a whole number from " + range;
        text = std::to_string(value); // decimal, as checked (CLI11 reads 010 as octal)
        return "";
      },
      "INT in " + range, "");
}

} // namespace distnode::node

#endif
