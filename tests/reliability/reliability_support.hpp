// Shared by the reliability tests: a reference model of what the guest wrote
// and flushed, and a seeded workload that drives a qcow2 image and the model
// in step.
#pragma once

#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "crash_candidates.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

namespace qcowkit::reliability {

inline constexpr uint64_t kSector = 512;

// What the guest sees now, what was last flushed, every value each sector
// was given since the flush (after a power cut it may hold any of those, and
// nothing else: test::SectorCandidates), and which sectors a failed operation
// hit (for reads between operations: their content is old or new).
struct Model {
  std::vector<uint8_t> current, flushed;
  test::SectorCandidates since;
  std::vector<bool> unknown;  // per sector

  explicit Model(uint64_t size) : current(size, 0), flushed(size, 0), unknown(size / kSector, false) {}

  // Before an operation that writes `data` (nullptr: zeroes) runs, whether it
  // succeeds or not.
  void touch(uint64_t offset, uint64_t length, const uint8_t* data) {
    since.add_range(current, offset, length, data);
  }
  void forget(uint64_t offset, uint64_t length) {
    for (uint64_t s = offset / kSector; s < (offset + length + kSector - 1) / kSector; ++s) unknown[s] = true;
  }
  void know(uint64_t offset, uint64_t length) {  // a whole-sector write makes sectors known again
    for (uint64_t s = offset / kSector; s < (offset + length) / kSector; ++s) unknown[s] = false;
  }
  void flush() {
    flushed = current;
    since.clear();
  }
  uint64_t sectors() const { return unknown.size(); }
};

struct Geometry {
  uint32_t cluster_size = 4096;
  unsigned refcount_bits = 16;
  int version = 3;
  uint64_t size = 1u << 20;
};

inline Qcow2OpenOptions small_cache_options() {
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = 8 * 4096;  // small: evictions happen often
  return options;
}

// A fresh image on `device`, created and closed so that all of it is durable.
inline void create_image(const std::shared_ptr<BlockDevice>& device, const Geometry& g) {
  Qcow2CreateOptions create;
  create.size = g.size;
  create.cluster_size = g.cluster_size;
  create.refcount_bits = g.refcount_bits;
  create.version = g.version;
  auto made = Qcow2Image::create(device, create);
  REQUIRE_OK(made);
  REQUIRE_OK((*made)->close());
}

inline std::unique_ptr<Qcow2Image> open_image(const std::shared_ptr<BlockDevice>& device) {
  auto image = Qcow2Image::open(device, small_cache_options());
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  return std::move(*image);
}

// One step of a seeded workload. Returns the operation's status; the model
// is updated as the operation demands (on failure its range becomes unknown).
struct Workload {
  std::mt19937_64 rng;
  Geometry g;

  Workload(uint64_t seed, const Geometry& geometry) : rng(seed), g(geometry) {}

  Status step(Qcow2Image& image, Model& model) {
    const uint64_t offset = (rng() % g.size) & ~(kSector - 1);
    const uint64_t length =
        std::min<uint64_t>(g.size - offset, ((rng() % (3 * g.cluster_size)) + kSector) & ~(kSector - 1));
    const unsigned what = rng() % 100;
    if (what < 45) {
      std::vector<uint8_t> data(length);
      for (auto& b : data) b = static_cast<uint8_t>(rng());
      const bool fua = rng() % 20 == 0;
      model.touch(offset, length, data.data());
      Status st = image.write(offset, data, {.fua = fua});
      if (!st.ok()) return model.forget(offset, length), st;
      std::memcpy(model.current.data() + offset, data.data(), length);
      model.know(offset, length);
      return st;
    }
    if (what < 58) {
      const bool discard = what >= 52;
      model.touch(offset, length, nullptr);
      Status st = discard ? image.discard(offset, length)
                          : image.write_zeroes(offset, length, {.may_trim = rng() % 2 == 0});
      if (!st.ok()) return model.forget(offset, length), st;
      std::memset(model.current.data() + offset, 0, length);
      model.know(offset, length);
      return st;
    }
    if (what < 64) {
      const uint64_t cluster = (rng() % (g.size / g.cluster_size)) * g.cluster_size;
      std::vector<uint8_t> data(g.cluster_size, 0);
      const uint8_t salt = static_cast<uint8_t>(rng());
      for (size_t i = 0; i < data.size() / 3; ++i) data[i] = static_cast<uint8_t>((i / 7) ^ salt);
      model.touch(cluster, g.cluster_size, data.data());
      Status st = image.write_compressed(cluster, data);
      if (!st.ok()) return model.forget(cluster, g.cluster_size), st;
      std::memcpy(model.current.data() + cluster, data.data(), data.size());
      model.know(cluster, g.cluster_size);
      return st;
    }
    if (what < 78) {
      Status st = image.flush();
      if (st.ok()) model.flush();
      return st;
    }
    std::vector<uint8_t> data(length);
    Status st = image.read(offset, data);
    if (st.ok()) {
      for (uint64_t s = offset / kSector; s < (offset + length) / kSector; ++s) {
        if (model.unknown[s]) continue;
        INFO("read at sector " << s);
        REQUIRE(std::memcmp(data.data() + (s * kSector - offset), model.current.data() + s * kSector, kSector) == 0);
      }
    }
    return st;
  }
};

// Where two buffers first differ, or -1: for assertions that say where,
// instead of printing megabytes of bytes.
inline int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::min(a.size(), b.size()));
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return -1;
}

// Checks an image reopened after a power cut: no corruption, every sector
// holds its flushed value or one written to it since (an operation the cut
// interrupted included); repairs leaks; returns what it now holds.
inline std::vector<uint8_t> verify_after_cut(Qcow2Image& image, const Model& model) {
  auto report = image.check(RepairMode::none);
  REQUIRE_OK(report);
  INFO((report->messages.empty() ? std::string() : report->messages[0]));
  REQUIRE(report->corruptions == 0);
  REQUIRE(report->check_errors == 0);
  std::vector<uint8_t> now(model.current.size());
  REQUIRE_OK(image.read(0, now));
  for (uint64_t s = 0; s < model.sectors(); ++s) {
    std::string why;
    const bool allowed = model.since.allows(s, now.data() + s * kSector, model.flushed.data() + s * kSector, &why);
    INFO("after the power cut, " << why);
    REQUIRE(allowed);
  }
  auto repaired = image.check(RepairMode::leaks);
  REQUIRE_OK(repaired);
  REQUIRE(repaired->corruptions == 0);
  auto after = image.check(RepairMode::none);
  REQUIRE_OK(after);
  REQUIRE(after->leaks == 0);
  REQUIRE(after->corruptions == 0);
  return now;
}

}  // namespace qcowkit::reliability
