// What a sector may hold after a power cut, for the crash tests (the model
// test here, tests/reliability; fuzz/fuzz_ops.cpp keeps a copy of its own).
//
// A sector may read the value it had at the last flush that returned, or one
// of the values written to it since (a write cut short by the power included:
// it may have reached the disk or not, at sector granularity). Nothing else:
// not zeroes where data was flushed and not rewritten, not another offset's
// data, not the stale bytes of a recycled cluster. The values written since
// the flush are kept per sector as 64-bit hashes.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace qcowkit::test {

class SectorCandidates {
 public:
  static constexpr uint64_t kSector = 512;

  static uint64_t hash(const uint8_t* bytes) {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < kSector; i += 8) {
      uint64_t word;
      std::memcpy(&word, bytes + i, 8);
      h ^= word + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      h ^= h >> 31;
      h *= 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
    }
    return h;
  }

  // Sector `sector` may now also hold the kSector bytes at `bytes`.
  void add(uint64_t sector, const uint8_t* bytes) {
    auto& set = since_[sector];
    const uint64_t h = hash(bytes);
    for (uint64_t have : set)
      if (have == h) return;
    set.push_back(h);
  }

  // An operation over [offset, offset + length) that writes `data` (nullptr:
  // zeroes), issued when the guest's view was `before`: every sector it
  // touches may hold what the operation makes of it. Partial sectors keep the
  // rest of their bytes from `before`.
  void add_range(const std::vector<uint8_t>& before, uint64_t offset, uint64_t length, const uint8_t* data) {
    uint8_t sector_bytes[kSector];
    const uint64_t end = offset + length;
    for (uint64_t s = offset / kSector; s * kSector < end; ++s) {
      const uint64_t start = s * kSector;
      for (uint64_t i = 0; i < kSector; ++i) {
        const uint64_t at = start + i;
        if (at >= offset && at < end)
          sector_bytes[i] = data ? data[at - offset] : 0;
        else
          sector_bytes[i] = at < before.size() ? before[at] : 0;
      }
      add(s, sector_bytes);
    }
  }

  // A flush returned: only the flushed values are possible again.
  void clear() { since_.clear(); }
  // One sector became durable by itself (a FUA write).
  void clear(uint64_t sector) { since_.erase(sector); }

  // Whether `now` is a value sector `sector` may hold, `flushed` being its
  // value at the last flush. Fills `why` when not.
  bool allows(uint64_t sector, const uint8_t* now, const uint8_t* flushed, std::string* why = nullptr) const {
    if (std::memcmp(now, flushed, kSector) == 0) return true;
    auto it = since_.find(sector);
    if (it != since_.end()) {
      const uint64_t h = hash(now);
      for (uint64_t have : it->second)
        if (have == h) return true;
    }
    if (why) {
      bool zero = true;
      for (uint64_t i = 0; i < kSector && zero; ++i) zero = now[i] == 0;
      *why = "sector " + std::to_string(sector) + " reads " + (zero ? "zeroes" : "data") +
             " that is neither its flushed value nor any of the " +
             std::to_string(it == since_.end() ? 0 : it->second.size()) + " value(s) written to it since";
    }
    return false;
  }

  size_t sectors_in_doubt() const { return since_.size(); }

 private:
  std::unordered_map<uint64_t, std::vector<uint64_t>> since_;
};

}  // namespace qcowkit::test
