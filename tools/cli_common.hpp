// What every verb shares: how it reports usage errors and failures, how it
// prints its help, and the --output option.
#pragma once

#include <string>
#include <vector>

#include "args.hpp"
#include "qcowkit/result.hpp"

namespace qcowkit::cli {

// Exit status for wrong usage (unknown option, missing argument, bad value).
inline constexpr int kExitUsage = 2;

// Prints "qcowkit VERB: WHY (see 'qcowkit VERB --help')" and returns kExitUsage.
int usage_error(const std::string& verb, const std::string& why);

// Prints "qcowkit VERB: MESSAGE" on one line and returns `status`.
int report_error(const std::string& verb, const Error& error, int status = 1);

// Parses `args` against `specs` plus --help/-h. On --help prints `help` to
// stdout and sets `exit_status` to 0; on bad usage prints the reason and sets
// it to kExitUsage. Returns the parsed arguments only when the verb should run.
std::optional<ParsedArgs> parse_verb_args(const std::string& verb, const std::string& help,
                                          const std::vector<std::string>& args,
                                          std::vector<OptionSpec> specs, int& exit_status);

enum class OutputFormat { human, json };

// Reads --output=human|json (default human).
Result<OutputFormat> output_format(const ParsedArgs& args);

// The spec entry for --output, shared by the verbs that print reports.
inline OptionSpec output_option() { return {0, "output", true}; }

}  // namespace qcowkit::cli
