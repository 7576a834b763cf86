// Counts, for every cluster of the file, how many references the image's
// metadata makes to it: what its refcount should be. Used by check and by the
// refcount rebuild.
//
// The counts are kept in pages allocated on first use, so memory follows the
// clusters the metadata names, not the size of the file: a hostile image can
// make its file terabytes long (sparse) while naming only a few clusters.
//
// Not thread-safe; one check owns one counter.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace qcowkit::qcow2 {

class ReferenceCounter {
 public:
  static constexpr unsigned kPageBits = 12;  // 4096 counts, 16 KiB a page
  static constexpr uint64_t kPageClusters = uint64_t{1} << kPageBits;

  ReferenceCounter(uint64_t file_clusters, unsigned cluster_bits)
      : file_clusters_(file_clusters), cluster_bits_(cluster_bits) {}

  // Adds one reference to every cluster [offset, offset + bytes) touches.
  // References past the end of the file are not stored but counted.
  void add(uint64_t offset, uint64_t bytes) {
    if (bytes == 0) return;
    const uint64_t first = offset >> cluster_bits_;
    const uint64_t last = (offset + bytes - 1) >> cluster_bits_;
    for (uint64_t c = first; c <= last; ++c) {
      if (c >= file_clusters_) {
        // Everything from here on is past the end too.
        if (first_beyond_end_ == 0 && beyond_end_ == 0) first_beyond_end_ = c << cluster_bits_;
        beyond_end_ += last - c + 1;
        return;
      }
      uint32_t& count = page_for_writing(c >> kPageBits)[c & (kPageClusters - 1)];
      if (count != UINT32_MAX) ++count;
    }
  }

  // Reads the counts of clusters visited mostly in ascending order, looking
  // a page up only when the cluster leaves the page it read last. Valid
  // while the counter is neither changed nor destroyed.
  class Cursor {
   public:
    explicit Cursor(const ReferenceCounter& refs) : refs_(refs) {}
    uint32_t count(uint64_t cluster) {
      const uint64_t page = cluster >> kPageBits;
      if (page != page_index_) {
        auto it = refs_.pages_.find(page);
        counts_ = it == refs_.pages_.end() ? nullptr : it->second.get();
        page_index_ = page;
      }
      return counts_ ? counts_[cluster & (kPageClusters - 1)] : 0;
    }

   private:
    const ReferenceCounter& refs_;
    uint64_t page_index_ = UINT64_MAX;  // no page read yet
    const uint32_t* counts_ = nullptr;  // page_index_'s counts, or null when it has none
  };

  // Whether any cluster in [first, end) has a reference.
  bool any_in(uint64_t first, uint64_t end) const {
    if (first >= end) return false;
    for (auto it = pages_.lower_bound(first >> kPageBits); it != pages_.end() && it->first <= ((end - 1) >> kPageBits);
         ++it) {
      const uint64_t page_start = it->first << kPageBits;
      const uint64_t from = std::max(first, page_start) - page_start;
      const uint64_t to = std::min(end, page_start + kPageClusters) - page_start;
      for (uint64_t i = from; i < to; ++i)
        if (it->second[i]) return true;
    }
    return false;
  }
  // The refcount blocks (`per_block` clusters each) whose range holds a
  // reference, in ascending order: the blocks a rebuilt structure needs.
  std::vector<uint64_t> blocks_with_references(uint64_t per_block) const {
    std::vector<uint64_t> out;
    for (const auto& [page, counts] : pages_) {
      const uint64_t first = (page << kPageBits) / per_block;
      const uint64_t last = (((page + 1) << kPageBits) - 1) / per_block;
      for (uint64_t b = first; b <= last; ++b)
        if ((out.empty() || out.back() < b) && any_in(b * per_block, (b + 1) * per_block)) out.push_back(b);
    }
    return out;
  }

  uint64_t clusters() const { return file_clusters_; }
  uint64_t references_beyond_end() const { return beyond_end_; }
  uint64_t first_beyond_end() const { return first_beyond_end_; }

 private:
  uint32_t* page_for_writing(uint64_t index) {
    std::unique_ptr<uint32_t[]>& page = pages_[index];
    if (!page) page = std::make_unique<uint32_t[]>(kPageClusters);  // zeroed
    return page.get();
  }

  uint64_t file_clusters_;
  unsigned cluster_bits_;
  std::map<uint64_t, std::unique_ptr<uint32_t[]>> pages_;
  uint64_t beyond_end_ = 0;
  uint64_t first_beyond_end_ = 0;
};

}  // namespace qcowkit::qcow2
