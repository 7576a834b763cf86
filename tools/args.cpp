#include "args.hpp"

namespace qcowkit::cli {
namespace {

const OptionSpec* find_short(const std::vector<OptionSpec>& specs, char c) {
  for (const auto& spec : specs)
    if (spec.short_name == c) return &spec;
  return nullptr;
}

const OptionSpec* find_long(const std::vector<OptionSpec>& specs, const std::string& name) {
  for (const auto& spec : specs)
    if (spec.long_name && name == spec.long_name) return &spec;
  return nullptr;
}

}  // namespace

std::string OptionSpec::canonical_name() const {
  return long_name ? std::string(long_name) : std::string(1, short_name);
}

std::optional<std::string> ParsedArgs::last(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

Result<ParsedArgs> parse_args(const std::vector<std::string>& args,
                              const std::vector<OptionSpec>& specs) {
  ParsedArgs parsed;
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg.size() < 2 || arg[0] != '-') {
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    if (arg[1] == '-') {
      size_t eq = arg.find('=');
      std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const OptionSpec* spec = find_long(specs, name);
      if (!spec) return make_error(EINVAL, "unknown option '--" + name + "'");
      std::string value;
      if (spec->takes_value) {
        if (eq != std::string::npos) {
          value = arg.substr(eq + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return make_error(EINVAL, "option '--" + name + "' needs a value");
        }
      } else if (eq != std::string::npos) {
        return make_error(EINVAL, "option '--" + name + "' takes no value");
      }
      parsed.values_[spec->canonical_name()].push_back(value);
      continue;
    }
    // One or more short options; the first that takes a value eats the rest.
    for (size_t k = 1; k < arg.size(); ++k) {
      const OptionSpec* spec = find_short(specs, arg[k]);
      if (!spec) return make_error(EINVAL, std::string("unknown option '-") + arg[k] + "'");
      std::string value;
      if (spec->takes_value) {
        if (k + 1 < arg.size()) {
          value = arg.substr(k + 1);
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          return make_error(EINVAL, std::string("option '-") + arg[k] + "' needs a value");
        }
        parsed.values_[spec->canonical_name()].push_back(value);
        break;
      }
      parsed.values_[spec->canonical_name()].push_back(value);
    }
  }
  return parsed;
}

Result<std::map<std::string, std::string>> parse_key_values(const std::vector<std::string>& lists) {
  std::map<std::string, std::string> out;
  for (const auto& list : lists) {
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string item = list.substr(start, comma == std::string::npos ? std::string::npos
                                                                        : comma - start);
      if (item.empty()) return make_error(EINVAL, "empty item in option list '" + list + "'");
      size_t eq = item.find('=');
      std::string key = item.substr(0, eq);
      if (key.empty()) return make_error(EINVAL, "missing option name in '" + item + "'");
      out[key] = eq == std::string::npos ? "on" : item.substr(eq + 1);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

}  // namespace qcowkit::cli
