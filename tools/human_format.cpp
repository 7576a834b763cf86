#include "human_format.hpp"

#include <cinttypes>
#include <cstdio>

namespace qcowkit::cli {

std::string human_size(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024 && unit < 6) {
    value /= 1024;
    ++unit;
  }
  char buf[64];
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%" PRIu64 " B", bytes);
  else
    std::snprintf(buf, sizeof buf, "%0.3g %s", value, kUnits[unit]);
  return buf;
}

std::string hex(uint64_t value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#" PRIx64, value);  // "0" for zero, as qemu-img
  return buf;
}

std::string percent(uint64_t part, uint64_t total) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", total ? 100.0 * part / total : 0.0);
  return buf;
}

}  // namespace qcowkit::cli
