#include "serve/serve_options.hpp"

#include <vector>

namespace qcowkit::serve {

const char* to_string(TrimMode mode) {
  switch (mode) {
    case TrimMode::deallocate: return "deallocate";
    case TrimMode::zero: return "zero";
    case TrimMode::off: return "off";
  }
  return "?";
}

Qcow2OpenOptions ServeOptions::open_options(bool writable) const {
  Qcow2OpenOptions o;
  o.read_only = !writable;
  o.metadata_cache_bytes = metadata_cache;
  o.snapshot = snapshot;
  return o;
}

Result<bool> apply_serve_option(ServeOptions& options, std::string_view name,
                                const std::string& shown_key, const std::string& value,
                                const ValueParsers& parsers) {
  auto bad = [&](const std::string& why) {
    return make_error(EINVAL, shown_key + "=" + value + ": " + why);
  };
  if (name == "metadata-cache") {
    QK_ASSIGN_OR_RETURN(uint64_t size, parsers.parse_size(value));
    // Below this a single L2 table of the largest clusters would not fit.
    if (size < (64u << 10)) return bad("must be at least 64K");
    options.metadata_cache = size;
  } else if (name == "trim") {
    if (value == "deallocate" || value == "discard") options.trim = TrimMode::deallocate;
    else if (value == "zero") options.trim = TrimMode::zero;
    else if (value == "off" || value == "ignore") options.trim = TrimMode::off;
    else return bad("must be deallocate, zero or off");
  } else if (name == "snapshot") {
    if (value.empty()) return bad("the snapshot name is empty");
    options.snapshot = value;
  } else {
    return false;
  }
  return true;
}

std::string serve_options_help(const std::string& prefix) {
  // One entry per option: the key, then its description's lines. The text
  // starts in column 24 (the plugin's layout); a key too long for that (the
  // filter's prefixed ones) gets a line of its own.
  struct Entry {
    const char* key;
    std::vector<const char*> lines;
  };
  const Entry entries[] = {
      {"metadata-cache=SIZE", {"Memory for cached L2 and refcount tables (default 32M)."}},
      {"trim=deallocate|zero|off",
       {"What a trim does: free clusters (default), only zero", "the range, or trim is not offered."}},
      {"snapshot=ID|NAME",
       {"Serve this internal snapshot instead of the image's", "current contents (read-only)."}},
  };
  constexpr size_t column = 23;
  std::string out;
  for (const Entry& e : entries) {
    if (!out.empty()) out += '\n';
    std::string key = prefix + e.key;
    bool first = true;
    if (key.size() >= column) {
      out += key;
      first = false;
    } else {
      key.resize(column, ' ');
      out += key;
    }
    for (const char* line : e.lines) {
      if (!first) out += '\n' + std::string(column, ' ');
      out += line;
      first = false;
    }
  }
  return out;
}

}  // namespace qcowkit::serve
