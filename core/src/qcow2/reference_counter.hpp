// Counts, for every cluster of the file, how many references the image's
// metadata makes to it: what its refcount should be. Used by check, by the
// refcount rebuild, and by compact.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qcowkit::qcow2 {

class ReferenceCounter {
 public:
  ReferenceCounter(uint64_t file_clusters, unsigned cluster_bits)
      : counts_(file_clusters, 0), cluster_bits_(cluster_bits) {}

  // Adds one reference to every cluster [offset, offset + bytes) touches.
  // References past the end of the file are not stored but counted.
  void add(uint64_t offset, uint64_t bytes) {
    if (bytes == 0) return;
    const uint64_t first = offset >> cluster_bits_;
    const uint64_t last = (offset + bytes - 1) >> cluster_bits_;
    for (uint64_t c = first; c <= last; ++c) {
      if (c >= counts_.size()) {
        ++beyond_end_;
        if (first_beyond_end_ == 0) first_beyond_end_ = c << cluster_bits_;
        continue;
      }
      if (counts_[c] != UINT32_MAX) ++counts_[c];
    }
  }

  uint32_t count(uint64_t cluster) const { return cluster < counts_.size() ? counts_[cluster] : 0; }
  uint64_t clusters() const { return counts_.size(); }
  uint64_t references_beyond_end() const { return beyond_end_; }
  uint64_t first_beyond_end() const { return first_beyond_end_; }
  // One past the highest cluster with a reference, or 0.
  uint64_t end() const {
    for (uint64_t c = counts_.size(); c > 0; --c)
      if (counts_[c - 1]) return c;
    return 0;
  }

 private:
  std::vector<uint32_t> counts_;
  unsigned cluster_bits_;
  uint64_t beyond_end_ = 0;
  uint64_t first_beyond_end_ = 0;
};

}  // namespace qcowkit::qcow2
