// Sizes as people type them on a command line: "1G", "512M", "1.5T", "65536",
// and for resize a relative "+10G" / "-1G". Suffixes are binary (K = 1024),
// case-insensitive, as qemu-img reads them; "B" or none means bytes.
#pragma once

#include <cstdint>
#include <string_view>

#include "qcowkit/result.hpp"

namespace qcowkit::cli {

Result<uint64_t> parse_size(std::string_view text);

struct SizeChange {
  enum class Kind { absolute, grow, shrink } kind = Kind::absolute;
  uint64_t amount = 0;
  // The size this change gives an image that is `current` bytes now.
  Result<uint64_t> apply(uint64_t current) const;
};

Result<SizeChange> parse_size_change(std::string_view text);

}  // namespace qcowkit::cli
