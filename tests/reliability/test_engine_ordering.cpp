// Regression tests for the qcow2 engine's write ordering under concurrent
// requests (issue 11's defects 1, 2, 3 and 5). Each builds the interleaving
// that once lost data or corrupted the image, and at every barrier checks
// the crash states of the open window: the durable bytes plus all of the
// window, none of it, and all of it but any one write.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"
#include "util/endian.hpp"
#include "window_device.hpp"

using namespace qcowkit;
using namespace qcowkit::test;
using namespace qcowkit::reliability;

namespace {

constexpr uint64_t kSectorBytes = 512;

// What each sector may hold after a crash: the value it had when the last
// flush returned, or (if written since) the value written.
struct SectorModel {
  std::vector<uint8_t> flushed, current;
  explicit SectorModel(uint64_t size) : flushed(size, 0), current(size, 0) {}
  void write(uint64_t offset, const std::vector<uint8_t>& data) {
    std::memcpy(current.data() + offset, data.data(), data.size());
  }
  void flush() { flushed = current; }
};

// Opens one crash state and returns what is wrong with it, or "".
std::string inspect(const std::shared_ptr<MemoryDevice>& dev, const SectorModel& model) {
  Qcow2OpenOptions o;
  o.read_only = true;
  auto image = Qcow2Image::open(dev, o);
  if (!image.ok()) return "does not open: " + image.error().message;
  auto report = (*image)->check(RepairMode::none);
  if (!report.ok()) return "check fails: " + report.error().message;
  if (report->corruptions != 0)
    return "check finds " + std::to_string(report->corruptions) + " corruptions: " +
           (report->messages.empty() ? std::string() : report->messages.front());
  std::vector<uint8_t> bytes(model.current.size());
  Status st = (*image)->read(0, bytes);
  if (!st.ok()) return "read fails: " + st.error().message;
  for (uint64_t s = 0; s < bytes.size() / kSectorBytes; ++s) {
    const uint8_t* got = bytes.data() + s * kSectorBytes;
    if (std::memcmp(got, model.flushed.data() + s * kSectorBytes, kSectorBytes) == 0) continue;
    if (std::memcmp(got, model.current.data() + s * kSectorBytes, kSectorBytes) == 0) continue;
    return "sector " + std::to_string(s) + " holds neither its flushed nor its written value";
  }
  return "";
}

// Calls inspect(state, what) for the crash states of `dev`'s open window:
// all of it, none of it, and all of it but any one write.
void for_each_crash_state(const WindowDevice& dev,
                          const std::function<void(std::shared_ptr<MemoryDevice>, const std::string&)>& inspect) {
  inspect(dev.crash_state([](size_t) { return true; }), "whole window");
  inspect(dev.crash_state([](size_t) { return false; }), "none of the window");
  for (size_t skip = 0, n = dev.window_size(); skip < n; ++skip)
    inspect(dev.crash_state([skip](size_t i) { return i != skip; }),
            "window without write " + std::to_string(skip));
}

// Installs a barrier hook that inspects every crash state of each window.
struct CrashStateChecker {
  explicit CrashStateChecker(const SectorModel* m) : model(m) {}
  const SectorModel* model;
  std::vector<std::string> failures;
  uint64_t states = 0;
  std::mutex mutex;

  void check(const WindowDevice& dev) {
    for_each_crash_state(dev, [&](std::shared_ptr<MemoryDevice> state, const std::string& what) {
      std::string problem = inspect(state, *model);
      std::lock_guard lock(mutex);
      ++states;
      if (!problem.empty() && failures.size() < 5)
        failures.push_back("barrier " + std::to_string(dev.barriers()) + ", " + what + ": " + problem);
    });
  }
};

// Flushes and closes `image` with every crash state of every window checked
// against `model`, and fails the test with what was found.
void flush_checking_every_window(WindowDevice& dev, Qcow2Image& image, SectorModel& model) {
  CrashStateChecker checker(&model);
  dev.on_barrier = [&](const WindowDevice& d) { checker.check(d); };
  REQUIRE_OK(image.flush());
  model.flush();
  REQUIRE_OK(image.close());
  dev.on_barrier = nullptr;
  INFO("crash states checked: " << checker.states);
  for (const auto& f : checker.failures) FAIL_CHECK(f);
  CHECK(checker.failures.empty());
}

std::shared_ptr<WindowDevice> new_image(uint64_t size, uint32_t cluster_size, bool extended_l2 = false) {
  auto dev = std::make_shared<WindowDevice>(0);
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = cluster_size;
  o.extended_l2 = extended_l2;
  auto made = Qcow2Image::create(dev, o);
  REQUIRE_OK(made);
  REQUIRE_OK((*made)->close());
  REQUIRE_OK(dev->flush());
  return dev;
}

std::unique_ptr<Qcow2Image> open_rw(const std::shared_ptr<WindowDevice>& dev, uint64_t cache_bytes) {
  Qcow2OpenOptions o;
  o.metadata_cache_bytes = cache_bytes;
  auto image = Qcow2Image::open(dev, o);
  REQUIRE_OK(image);
  return std::move(*image);
}

uint64_t header_u64(WindowDevice& dev, uint64_t offset) {
  uint8_t b[8];
  REQUIRE_OK(dev.read(offset, b));
  return load_be64(b);
}

std::vector<uint8_t> filled(size_t n, uint8_t seed) {
  auto v = pattern_bytes(n, seed);
  return v;
}

}  // namespace

TEST_CASE("an evicted refcount block is durable before the L2 table that needs it",
          "[reliability][ordering]") {
  constexpr uint64_t kSize = 64u << 20, kCluster = 4096, kTableSpan = 2u << 20;
  auto dev = new_image(kSize, kCluster);
  auto image = open_rw(dev, 8 * kCluster);  // the smallest cache: eight tables
  SectorModel model(kSize);
  for (uint64_t k = 0; k < 12; ++k) {  // twelve L2 tables exist
    auto data = filled(kCluster, static_cast<uint8_t>(k));
    REQUIRE_OK(image->write(k * kTableSpan, data));
    model.write(k * kTableSpan, data);
  }
  REQUIRE_OK(image->flush());
  model.flush();

  const uint64_t reftable = header_u64(*dev, 48);
  const uint64_t refblock = header_u64(*dev, reftable);
  const uint64_t l2_of_3 = header_u64(*dev, header_u64(*dev, 40) + 3 * 8) & 0x00fffffffffffe00ULL;
  std::atomic<bool> refblock_written{false}, l2_written{false};
  dev->before_write = [&](uint64_t offset, uint64_t) {
    if (offset == refblock) refblock_written = true;
    if (offset == l2_of_3) l2_written = true;
  };

  // An allocation dirties the refcount block and table 3; lookups in other
  // tables then push the refcount block (but not table 3) out of the cache.
  auto data = filled(kCluster, 99);
  REQUIRE_OK(image->write(3 * kTableSpan + 5 * kCluster, data));
  model.write(3 * kTableSpan + 5 * kCluster, data);
  std::vector<uint8_t> scratch(512);
  for (uint64_t k = 4; k < 12 && !refblock_written; ++k) REQUIRE_OK(image->read(k * kTableSpan, scratch));
  REQUIRE(refblock_written);
  REQUIRE_FALSE(l2_written);

  flush_checking_every_window(*dev, *image, model);
}

TEST_CASE("a new cluster's data is durable before the L2 entry that names it",
          "[reliability][ordering]") {
  constexpr uint64_t kSize = 4u << 20, kCluster = 65536;
  auto dev = new_image(kSize, kCluster);
  auto image = open_rw(dev, 1u << 20);
  SectorModel model(kSize);
  // A compressed cluster: overwriting part of it allocates a new cluster
  // holding the old contents with the new bytes merged in.
  std::vector<uint8_t> text(kCluster);
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<uint8_t>('a' + (i / 100) % 26);
  REQUIRE_OK(image->write_compressed(0, text));
  model.write(0, text);
  REQUIRE_OK(image->flush());
  model.flush();

  // While the new cluster's data is on its way, another request flushes.
  std::thread flusher;
  std::atomic<bool> armed{true};
  Status flusher_status;
  dev->before_write = [&](uint64_t, uint64_t length) {
    if (length != kCluster || !armed.exchange(false)) return;
    const uint64_t before = dev->barriers();
    flusher = std::thread([&] { flusher_status = image->flush(); });
    for (int i = 0; i < 1000 && dev->barriers() < before + 1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  auto patch = filled(1024, 7);
  REQUIRE_OK(image->write(4096, patch));
  model.write(4096, patch);
  flusher.join();
  REQUIRE_OK(flusher_status);
  REQUIRE_FALSE(armed);

  flush_checking_every_window(*dev, *image, model);
}

TEST_CASE("a flush frees only clusters whose references it put on disk", "[reliability][ordering]") {
  constexpr uint64_t kSize = 4u << 20, kCluster = 4096;
  auto dev = new_image(kSize, kCluster);
  auto image = open_rw(dev, 1u << 20);
  SectorModel model(kSize);
  auto x = filled(kCluster, 1);
  REQUIRE_OK(image->write(0, x));
  model.write(0, x);
  REQUIRE_OK(image->flush());
  model.flush();

  // A flush is under way (it holds the metadata lock at its first barrier)
  // when a discard of cluster X arrives; the discard's L2 change is not on
  // disk when that flush lets go of the lock.
  auto y = filled(kCluster, 2);
  REQUIRE_OK(image->write(1u << 20, y));
  model.write(1u << 20, y);
  std::vector<uint8_t> zeroes(kCluster, 0);
  model.write(0, zeroes);  // X reads its flushed bytes or zeroes from now on
  CrashStateChecker checker(&model);
  std::thread discarder;
  std::atomic<bool> armed{true};
  Status discard_status;
  dev->on_barrier = [&](const WindowDevice& d) {
    checker.check(d);
    if (!armed.exchange(false)) return;
    discarder = std::thread([&] { discard_status = image->discard(0, kCluster); });
    // Let the discard reach the metadata lock the flush holds.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  };
  REQUIRE_OK(image->flush());
  discarder.join();
  REQUIRE_OK(discard_status);
  // That flush made Y durable, but not the discard, which began after it.
  std::memcpy(model.flushed.data() + (1u << 20), y.data(), y.size());
  REQUIRE_OK(image->flush());
  model.flush();

  // At run time too: a new allocation must not reuse X while X is named.
  auto z = filled(kCluster, 3);
  REQUIRE_OK(image->write(2u << 20, z));
  model.write(2u << 20, z);
  REQUIRE_OK(image->flush());
  model.flush();
  REQUIRE_OK(image->close());
  dev->on_barrier = nullptr;
  INFO("crash states checked: " << checker.states);
  for (const auto& f : checker.failures) FAIL_CHECK(f);
  CHECK(checker.failures.empty());
}

TEST_CASE("extended L2: filling a subcluster does not move the cluster under an in-place write",
          "[reliability][ordering]") {
  constexpr uint64_t kSize = 4u << 20, kCluster = 65536, kSub = kCluster / 32;
  auto dev = new_image(kSize, kCluster, /*extended_l2=*/true);
  auto p0 = filled(kCluster, 10);
  {
    auto image = open_rw(dev, 1u << 20);
    REQUIRE_OK(image->write(0, p0));
    REQUIRE_OK(image->close());
  }
  // As qemu writes them: only subclusters 0-15 of cluster 0 allocated.
  const uint64_t l2 = header_u64(*dev, header_u64(*dev, 40)) & 0x00fffffffffffe00ULL;
  uint8_t bitmap[8];
  store_be64(bitmap, 0x000000000000ffffULL);
  REQUIRE_OK(dev->write(l2 + 8, bitmap));
  REQUIRE_OK(dev->flush());

  auto image = open_rw(dev, 1u << 20);
  auto pa = filled(kSub, 20), pb = filled(kSub, 30);
  std::atomic<bool> armed{true};
  Status b_status;
  dev->before_write = [&](uint64_t, uint64_t) {
    if (!armed.exchange(false)) return;
    // While A's subcluster is being written, B overwrites subcluster 0.
    std::thread b([&] { b_status = image->write(0, pb); });
    b.join();
  };
  REQUIRE_OK(image->write(20 * kSub, pa));
  REQUIRE_FALSE(armed);
  REQUIRE_OK(b_status);
  dev->before_write = nullptr;

  std::vector<uint8_t> expected(kCluster, 0);
  std::memcpy(expected.data(), p0.data(), 16 * kSub);
  std::memcpy(expected.data(), pb.data(), kSub);
  std::memcpy(expected.data() + 20 * kSub, pa.data(), kSub);
  CHECK(read_all(*image, 0, kCluster) == expected);
  REQUIRE_OK(image->flush());
  auto report = image->check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
  REQUIRE_OK(image->close());
  auto reopened = open_rw(dev, 1u << 20);
  CHECK(read_all(*reopened, 0, kCluster) == expected);
}

namespace {

// Every crash state of every window while `operation` runs on an image
// that holds `model`'s bytes: it opens, its snapshot count is one of
// `counts`, each sector holds a value the model allows, and check finds no
// corruption but, at most, clusters whose refcount dropped to 1 before their
// COPIED flag came back (the harmless half of delete's last step, which
// `check -r all` repairs).
struct SnapshotCrashChecker {
  const SectorModel* model;
  std::vector<uint32_t> counts;
  std::vector<std::string> failures;
  uint64_t states = 0;

  void check(const WindowDevice& dev) {
    for_each_crash_state(dev, [&](std::shared_ptr<MemoryDevice> state, const std::string& what) {
      ++states;
      std::string problem = inspect_snapshot_state(state);
      if (!problem.empty() && failures.size() < 5)
        failures.push_back("barrier " + std::to_string(dev.barriers()) + ", " + what + ": " + problem);
    });
  }

  std::string inspect_snapshot_state(const std::shared_ptr<MemoryDevice>& dev) {
    Qcow2OpenOptions o;
    o.read_only = true;
    auto image = Qcow2Image::open(dev, o);
    if (!image.ok()) return "does not open: " + image.error().message;
    const auto found = (*image)->details().snapshots.size();
    if (std::find(counts.begin(), counts.end(), found) == counts.end())
      return "holds " + std::to_string(found) + " snapshots";
    auto report = (*image)->check(RepairMode::none);
    if (!report.ok()) return "check fails: " + report.error().message;
    for (const std::string& m : report->messages)
      if (m.rfind("ERROR", 0) == 0 && m.find("OFLAG_COPIED") == std::string::npos)
        return "check: " + m;
      else if (m.find("OFLAG_COPIED") != std::string::npos && m.find("refcount=1") == std::string::npos)
        return "check: " + m;
    std::vector<uint8_t> bytes(model->current.size());
    Status st = (*image)->read(0, bytes);
    if (!st.ok()) return "read fails: " + st.error().message;
    for (uint64_t s = 0; s < bytes.size() / kSectorBytes; ++s) {
      const uint8_t* got = bytes.data() + s * kSectorBytes;
      if (std::memcmp(got, model->flushed.data() + s * kSectorBytes, kSectorBytes) != 0 &&
          std::memcmp(got, model->current.data() + s * kSectorBytes, kSectorBytes) != 0)
        return "sector " + std::to_string(s) + " holds neither the old nor the new contents";
    }
    return "";
  }
};

}  // namespace

TEST_CASE("snapshot create, apply and delete are crash-safe at every barrier", "[reliability][ordering][snapshot]") {
  constexpr uint64_t kSize = 4u << 20, kCluster = 4096;
  auto dev = new_image(kSize, kCluster);
  auto image = open_rw(dev, 8 * kCluster);
  SectorModel model(kSize);
  for (uint64_t off = 0; off < kSize; off += 256 * 1024) {
    auto data = filled(3 * kCluster, static_cast<uint8_t>(off >> 18));
    REQUIRE_OK(image->write(off, data));
    model.write(off, data);
  }
  REQUIRE_OK(image->flush());
  model.flush();
  const SectorModel at_snapshot = model;

  SnapshotCrashChecker checker{&model, {0, 1}, {}};
  dev->on_barrier = [&](const WindowDevice& d) { checker.check(d); };
  REQUIRE_OK(image->create_snapshot("one"));
  dev->on_barrier = nullptr;

  for (uint64_t off = 64 * 1024; off < kSize; off += 512 * 1024) {
    auto data = filled(2 * kCluster, static_cast<uint8_t>(0x80 | (off >> 19)));
    REQUIRE_OK(image->write(off, data));
    model.write(off, data);
  }
  REQUIRE_OK(image->flush());
  model.flush();

  // Applying: each sector reads its current value or the snapshot's.
  SectorModel applying = model;
  applying.current = at_snapshot.current;
  checker.model = &applying;
  checker.counts = {1};
  dev->on_barrier = [&](const WindowDevice& d) { checker.check(d); };
  REQUIRE_OK(image->apply_snapshot("one"));
  CHECK(read_all(*image, 0, kSize) == at_snapshot.current);

  checker.model = &at_snapshot;
  checker.counts = {0, 1};
  REQUIRE_OK(image->delete_snapshot("one"));
  dev->on_barrier = nullptr;
  auto report = image->check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
  REQUIRE_OK(image->close());
  INFO("crash states checked: " << checker.states);
  for (const auto& f : checker.failures) FAIL_CHECK(f);
  CHECK(checker.failures.empty());
  CHECK(checker.states > 20);
}
