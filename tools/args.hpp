// Command-line parsing for the verbs: short options ("-c", "-o VALUE",
// "-oVALUE", grouped flags "-cp"), long options ("--output=json",
// "--output json", "--shrink"), "--" to end options. Options may appear
// anywhere among the positional arguments, as qemu-img allows.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/result.hpp"

namespace qcowkit::cli {

struct OptionSpec {
  char short_name = 0;             // 0: long form only
  const char* long_name = nullptr; // nullptr: short form only
  bool takes_value = false;

  // The name ParsedArgs files the option under: the long name if any.
  std::string canonical_name() const;
};

class ParsedArgs {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given (options given twice: the last one wins).
  std::optional<std::string> last(const std::string& name) const;
  // Every value given, in order (for repeatable options such as -o).
  std::vector<std::string> all(const std::string& name) const;

  std::vector<std::string> positionals;

 private:
  friend Result<ParsedArgs> parse_args(const std::vector<std::string>&,
                                       const std::vector<OptionSpec>&);
  std::map<std::string, std::vector<std::string>> values_;
};

// Fails with EINVAL and a one-line reason on an unknown option, a missing
// value, or a value given to a flag.
Result<ParsedArgs> parse_args(const std::vector<std::string>& args,
                              const std::vector<OptionSpec>& specs);

// Splits "-o" style option lists: "a=1,b=2" -> {a: 1, b: 2}. A bare "a"
// means "a=on". Later keys override earlier ones.
Result<std::map<std::string, std::string>> parse_key_values(const std::vector<std::string>& lists);


}  // namespace qcowkit::cli
