// Option values as people type them, on a command line or in "-o key=value":
// sizes ("1G", "512M", "1.5T", "65536", and for resize a relative "+10G" /
// "-1G"; suffixes are binary, K = 1024, case-insensitive, as qemu-img reads
// them; "B" or none means bytes) and on/off switches. Every adapter and every
// format's option parser reads values through these, so "64k" means the same
// everywhere. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "qcowkit/result.hpp"

namespace qcowkit {

Result<uint64_t> parse_size(std::string_view text);

struct SizeChange {
  enum class Kind { absolute, grow, shrink } kind = Kind::absolute;
  uint64_t amount = 0;
  // The size this change gives an image that is `current` bytes now.
  Result<uint64_t> apply(uint64_t current) const;
};

Result<SizeChange> parse_size_change(std::string_view text);

// "on"/"off" (also true/false, yes/no, 1/0); EINVAL naming `key` otherwise.
Result<bool> parse_on_off(const std::string& key, const std::string& value);

}  // namespace qcowkit
