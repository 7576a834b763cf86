// Option helpers shared by the format registry entries.
#include <algorithm>

#include "formats/format_entries.hpp"

namespace qcowkit::formats {

Status check_known_keys(const FormatOptions& options, std::initializer_list<const char*> known,
                        const char* format) {
  for (const auto& entry : options) {
    const std::string& key = entry.first;
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; })) {
      std::string list;
      for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
      return make_error(EINVAL, "unknown option '-o " + key + "' for " + format + " (" +
                                    (list.empty() ? std::string("it takes none") : "known: " + list) +
                                    ")");
    }
  }
  return {};
}

Result<bool> option_bool(const FormatOptions& options, const char* key, bool fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  const std::string& v = it->second;
  if (v == "on" || v == "true" || v == "yes" || v.empty()) return true;
  if (v == "off" || v == "false" || v == "no") return false;
  return make_error(EINVAL, "invalid value '" + v + "' for -o " + key + " (expected on or off)");
}

}  // namespace qcowkit::formats
