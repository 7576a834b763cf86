// The crash explorer's Catch2 side: the kinds of disk it explores (each a
// starting disk, made once, and a target), and run_kind(), which explores
// one kind for a number of seeded rounds and turns a finding into a failure
// that names the seed and shows the operations.
//
//   QCOWKIT_EXPLORER_SEED=N      run only seed N (replays a failure)
//   QCOWKIT_EXPLORER_SECONDS=S   explore each kind for S seconds instead of
//                                the default rounds (`make crash-explore`)
//   QCOWKIT_EXPLORER_ROUNDS=N    run N rounds (seeds 1..N), however long
//   QCOWKIT_EXPLORER_KEEP_GOING=1  after a finding, print its first lines
//                                and go on with the next seed (fails at the end)
//
// The model itself (RecordingDevice, crash states, GuestHistory, explore())
// lives in core/testing, shared with fuzz/fuzz_crash.cpp.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "qcowkit/testing/crash_explorer.hpp"
#include "test_support.hpp"

namespace qcowkit::explorer {

using namespace qcowkit::testing;

struct Kind {
  explicit Kind(std::string kind_name) : name(std::move(kind_name)) {}
  std::string name;
  uint64_t guest_size = 4u << 20;
  std::function<std::vector<uint8_t>()> make_disk;  // called once per run_kind
  std::shared_ptr<ExplorerTarget> target;
  ExplorerConfig config;
  bool qcow2 = true;              // check the final image with qemu-img too
  std::string snapshot;           // an internal snapshot that must keep its contents
  unsigned default_rounds = 10;
  double default_seconds = 6.0;   // and never longer than this, unless asked
};

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a command; its output goes to `log` (shown when the test fails).
inline int run_command(const std::string& command, const std::string& log) {
  const int status = std::system((command + " >" + shell_quote(log) + " 2>&1").c_str());
  return status == -1 ? -1 : WEXITSTATUS(status);
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs qemu-img/qemu-io; a failure fails the test with its output.
inline void qemu(const test::TempDir& dir, const std::string& args) {
  const std::string log = dir.file("qemu.log");
  const int rc = run_command(args, log);
  INFO(args << "\n" << file_text(log));
  REQUIRE(rc == 0);
}

// Bytes that say which prefill write they came from (ids far above any the
// explorer hands out, so a report tells them apart).
inline std::vector<uint8_t> prefill_bytes(uint32_t n, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> out(length);
  for (uint64_t at = 0; at < length; at += kGuestSector)
    fill_sector(out.data() + at, 0x7f00'0000u + n, (offset + at) / kGuestSector);
  return out;
}

// A qcow2 image made by this engine, with every third cluster of data
// written (compressed when asked) and closed, so all of it is durable.
inline std::vector<uint8_t> engine_image(const Qcow2CreateOptions& create, bool compressed = false) {
  auto disk = std::make_shared<MemoryDevice>(0);
  auto made = Qcow2Image::create(disk, create);
  REQUIRE_OK(made);
  Qcow2Image& image = **made;
  const uint64_t cluster = create.cluster_size;
  const uint64_t step = std::max<uint64_t>(3 * cluster, 48u << 10);
  uint32_t n = 0;
  for (uint64_t at = 0; at + cluster <= create.size; at += step) {
    const auto data = prefill_bytes(n++, at, cluster);
    if (compressed)
      REQUIRE_OK(image.write_compressed(at, data));
    else
      REQUIRE_OK(image.write(at, data));
  }
  REQUIRE_OK(image.close());
  std::vector<uint8_t> bytes(disk->info().size);
  REQUIRE_OK(disk->read(0, bytes));
  return bytes;
}

inline std::vector<uint8_t> raw_disk(uint64_t size) {
  std::vector<uint8_t> bytes(size, 0);
  uint32_t n = 0;
  for (uint64_t at = 0; at < size; at += 5 * 4096) {
    const auto data = prefill_bytes(n++, at, std::min<uint64_t>(8192, size - at));
    std::copy(data.begin(), data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
  }
  return bytes;
}

inline uint64_t env_number(const char* name, uint64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::strtoull(value, nullptr, 10) : fallback;
}

// Checks a closed image with qemu-img (exit 0: no corruption, no leak) and
// that qemu reads the same guest bytes our engine does.
inline void qemu_verify(const test::TempDir& dir, const Kind& kind, const std::vector<uint8_t>& disk,
                        const std::vector<uint8_t>& snapshot_before) {
  const std::string image = dir.file("final.qcow2");
  write_file(image, disk);
  qemu(dir, "qemu-img check -f qcow2 " + shell_quote(image));
  const std::string raw = dir.file("final.raw");
  qemu(dir, "qemu-img convert -f qcow2 -O raw " + shell_quote(image) + " " + shell_quote(raw));
  auto mem = memory_device_of(disk);
  auto opened = Qcow2Image::open(mem, Qcow2OpenOptions{});
  REQUIRE_OK(opened);
  std::vector<uint8_t> ours((*opened)->info().size);
  REQUIRE_OK((*opened)->read(0, ours));
  INFO("qemu-img convert reads other guest bytes than qcowkit does");
  REQUIRE(read_file(raw) == ours);
  if (!kind.snapshot.empty()) {
    const std::string snap = dir.file("snapshot.raw");
    qemu(dir, "qemu-img convert -f qcow2 -O raw -l " + shell_quote(kind.snapshot) + " " +
                  shell_quote(image) + " " + shell_quote(snap));
    INFO("the internal snapshot changed under the workload");
    REQUIRE(read_file(snap) == snapshot_before);
  }
}

// Explores one kind; fails on the first finding. Prints the totals.
inline void run_kind(const Kind& kind) {
  const uint64_t only_seed = env_number("QCOWKIT_EXPLORER_SEED", 0);
  const double seconds = static_cast<double>(env_number("QCOWKIT_EXPLORER_SECONDS", 0));
  const uint64_t first_seed = only_seed ? only_seed : 1;
  const uint64_t asked_rounds = env_number("QCOWKIT_EXPLORER_ROUNDS", 0);
  const bool keep_going = env_number("QCOWKIT_EXPLORER_KEEP_GOING", 0) != 0;
  const unsigned rounds = only_seed       ? 1
                          : asked_rounds  ? static_cast<unsigned>(asked_rounds)
                          : seconds > 0   ? ~0u
                                          : kind.default_rounds;
  const double budget = seconds > 0 ? seconds : asked_rounds ? 1e9 : kind.default_seconds;
  unsigned findings = 0;

  test::TempDir dir;
  const std::vector<uint8_t> disk = kind.make_disk();
  std::vector<uint8_t> snapshot_before;
  if (!kind.snapshot.empty()) {
    const std::string image = dir.file("start.qcow2"), snap = dir.file("start-snapshot.raw");
    write_file(image, disk);
    qemu(dir, "qemu-img convert -f qcow2 -O raw -l " + shell_quote(kind.snapshot) + " " +
                  shell_quote(image) + " " + shell_quote(snap));
    snapshot_before = read_file(snap);
  }

  ExplorerReport total;
  unsigned done = 0;
  const auto start = std::chrono::steady_clock::now();
  for (unsigned round = 0; round < rounds; ++round) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (round > 0 && elapsed >= budget) break;
    ExplorerConfig config = kind.config;
    config.seed = first_seed + round;
    const Program program = generate_program(config, kind.guest_size);
    ExplorerReport report = explore(*kind.target, disk, program);
    total.operations += report.operations;
    total.crash_points += report.crash_points;
    total.crash_states += report.crash_states;
    total.reads_checked += report.reads_checked;
    total.device_events += report.device_events;
    ++done;
    if (report.finding && keep_going) {
      ++findings;
      // The gist: the first lines, without the long disk description.
      std::string head;
      size_t from = 0;
      for (int lines = 0; lines < 6 && from < report.finding->size(); ++lines) {
        size_t to = report.finding->find('\n', from);
        if (to == std::string::npos) to = report.finding->size();
        const std::string line = report.finding->substr(from, to - from);
        if (line.rfind("disk:", 0) != 0) head += "\n    " + line;
        from = to + 1;
      }
      std::printf("explorer %s seed %llu FINDING:%s\n", kind.name.c_str(),
                  static_cast<unsigned long long>(config.seed), head.c_str());
      std::fflush(stdout);
      continue;
    }
    if (report.finding) {
      FAIL("explorer kind '" << kind.name << "' seed " << config.seed
           << " found a problem (replay: QCOWKIT_EXPLORER_SEED=" << config.seed
           << " reliability_tests '" << Catch::getResultCapture().getCurrentTestName() << "')\nprogram: " << describe(program)
           << "\n" << *report.finding);
    }
    if (kind.qcow2) qemu_verify(dir, kind, report.final_disk, snapshot_before);
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("explorer %-28s %3u rounds (seeds %llu..%llu), %6llu crash states at %5llu crash points, "
              "%6llu reads checked, %6llu operations, %7llu device events, %.1f s\n",
              kind.name.c_str(), done, static_cast<unsigned long long>(first_seed),
              static_cast<unsigned long long>(first_seed + done - 1),
              static_cast<unsigned long long>(total.crash_states),
              static_cast<unsigned long long>(total.crash_points),
              static_cast<unsigned long long>(total.reads_checked),
              static_cast<unsigned long long>(total.operations),
              static_cast<unsigned long long>(total.device_events), elapsed);
  std::fflush(stdout);
  REQUIRE(findings == 0);
  REQUIRE(total.crash_states > 0);
}

}  // namespace qcowkit::explorer
