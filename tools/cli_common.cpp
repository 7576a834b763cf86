#include "cli_common.hpp"

#include <cstdio>

namespace qcowkit::cli {

int usage_error(const std::string& verb, const std::string& why) {
  std::fprintf(stderr, "qcowkit %s: %s (see 'qcowkit %s --help')\n", verb.c_str(), why.c_str(),
               verb.c_str());
  return kExitUsage;
}

int report_error(const std::string& verb, const Error& error, int status) {
  // Keep it on one line whatever the message carries.
  std::string message = error.message;
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "qcowkit %s: %s\n", verb.c_str(), message.c_str());
  return status;
}

std::optional<ParsedArgs> parse_verb_args(const std::string& verb, const std::string& help,
                                          const std::vector<std::string>& args,
                                          std::vector<OptionSpec> specs, int& exit_status) {
  specs.push_back({'h', "help", false});
  // qemu-img's -U (--force-share) lifts its image locks; qcowkit takes none,
  // so every verb accepts it and nothing changes.
  specs.push_back({'U', "force-share", false});
  auto parsed = parse_args(args, specs);
  if (!parsed.ok()) {
    exit_status = usage_error(verb, parsed.error().message);
    return std::nullopt;
  }
  if (parsed->has("help")) {
    std::fputs(help.c_str(), stdout);
    exit_status = 0;
    return std::nullopt;
  }
  return std::move(parsed).value();
}

Result<OutputFormat> output_format(const ParsedArgs& args) {
  auto value = args.last("output");
  if (!value || *value == "human") return OutputFormat::human;
  if (*value == "json") return OutputFormat::json;
  return make_error(EINVAL, "--output must be human or json, not '" + *value + "'");
}

}  // namespace qcowkit::cli
