#include "snapshot_list.hpp"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <string>

#include "human_format.hpp"

namespace qcowkit::cli {
namespace {

std::string snapshot_date(uint32_t seconds) {
  time_t t = seconds;
  struct tm parts;
  localtime_r(&t, &parts);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &parts);
  return buf;
}

std::string snapshot_clock(uint64_t nsec) {
  uint64_t msec = nsec / 1000000;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
                msec / 3600000, msec / 60000 % 60, msec / 1000 % 60, msec % 1000);
  return buf;
}

}  // namespace

void print_snapshot_list(const std::vector<Qcow2Snapshot>& snapshots) {
  std::printf("Snapshot list:\n%-9s %-17s %7s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE",
              "VM CLOCK", "ICOUNT");
  for (const auto& s : snapshots) {
    std::string icount = s.icount == UINT64_MAX ? "" : std::to_string(s.icount);
    std::printf("%-9s %-17s %7s%20s%13s%11s\n", s.id.c_str(), s.name.c_str(),
                human_size(s.vm_state_size).c_str(), snapshot_date(s.date_sec).c_str(),
                snapshot_clock(s.vm_clock_nsec).c_str(), icount.c_str());
  }
}

}  // namespace qcowkit::cli
