// Numbers for people, in the style qemu-img prints them.
#pragma once

#include <cstdint>
#include <string>

namespace qcowkit::cli {

// "0 B", "512 B", "1 GiB", "1.25 MiB", "3.26 MiB": three significant digits
// in the largest binary unit that keeps the value at 1 or more.
std::string human_size(uint64_t bytes);

// "0x50000" ("0" for zero, as printf's # flag and qemu-img have it)
std::string hex(uint64_t value);

// A percentage with two decimals, "0.10"; 0 when `total` is 0.
std::string percent(uint64_t part, uint64_t total);

}  // namespace qcowkit::cli
