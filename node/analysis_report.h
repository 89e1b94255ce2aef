// analysis_report.h - `distnode --analyze`: the program analysis as text or JSON.
#ifndef DISTNODE_NODE_ANALYSIS_REPORT_H
#define DISTNODE_NODE_ANALYSIS_REPORT_H

#include "jit/program_analysis.h"

#include <nlohmann/json.hpp>

#include <string>

namespace distnode::node {

/// The JSON schema's name and version, written as the "schema" field.
inline constexpr const char *kAnalysisSchema = "distnode-analysis/1";

/// The analysis as JSON (schema documented in README.md, "distnode --analyze").
[[nodiscard]] nlohmann::json analysisToJson(const jit::ProgramAnalysis &analysis,
                                            const std::string &program_path,
                                            const std::string &sha256_hex);

/// The analysis as text for a person: one block per function, then groups and the call graph.
[[nodiscard]] std::string analysisToText(const jit::ProgramAnalysis &analysis,
                                         const std::string &program_path);

} // namespace distnode::node

#endif
