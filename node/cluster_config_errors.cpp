// cluster_config_errors.cpp - cluster.yaml's readers as llvm::Expected, for distnode.
#include "node/cluster_config.h"

#include "llvm/Support/Error.h"

namespace distnode::node {

namespace {

template <typename T> llvm::Expected<T> expected(std::optional<std::string> error, T value) {
  if (error)
    return llvm::createStringError(llvm::inconvertibleErrorCode(), *error);
  return value;
}

} // namespace

llvm::Expected<ClusterConfig> loadClusterConfig(const std::string &path) {
  ClusterConfig c;
  auto error = readClusterConfig(path, c);
  return expected(std::move(error), std::move(c));
}

llvm::Expected<ClusterConfig> parseClusterConfig(const std::string &text, const std::string &path) {
  ClusterConfig c;
  auto error = parseClusterConfig(text, path, c);
  return expected(std::move(error), std::move(c));
}

llvm::Expected<std::vector<PlacementEntry>> loadPlacementFile(const std::string &path) {
  std::vector<PlacementEntry> entries;
  auto error = readPlacementFile(path, entries);
  return expected(std::move(error), std::move(entries));
}

} // namespace distnode::node
