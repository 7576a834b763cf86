// PageBuffers: the cache's page-sized data buffers, carved out of slabs of
// 2 MiB and handed out and taken back without calling the allocator.
//
// Why slabs: a 4 KiB allocation per page, made under the cache's lock,
// had the allocator grow the heap of the calling thread's arena one page
// at a time (nbdkit's request threads do not use the main arena, and each
// step of growth there is an mprotect call) while every other writer
// waited on the lock. One allocation per slab is one call to the system.
// Why 2 MiB, aligned: the kernel can back each slab with one transparent
// huge page (asked for with madvise where there is one), so the first
// write into a slab takes one page fault, not 512, again under the lock.
// fio, 256 KiB sequential writes into an empty 512 MiB cache over nbdkit,
// three alternating pairs each time: a buffer per page 0.55-0.98 GB/s
// against 1 MiB slabs 0.62-1.13; later, 1 MiB slabs 1.09-1.40 against
// 2 MiB huge-page slabs 1.50-1.77, on two thirds of the system time.
//
// Memory: at most `limit` buffers ever exist (the last slab is cut short
// to fit), which is the bound the cache keeps on pages held plus spare
// buffers. Slabs go back to the system only in clear() or on destruction,
// as the spare buffers the cache kept before did.
//
// Ownership: the buffers belong to this object; a buffer handed out stays
// valid until clear() or destruction, whether or not it was given back.
// Not thread-safe: the cache's mutex guards it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace qcowkit::cache {

class PageBuffers {
 public:
  PageBuffers(uint32_t page_size, uint64_t limit)
      : page_size_(page_size),
        limit_(limit),
        slab_pages_(std::max<uint64_t>(1, kSlabBytes / page_size)) {}

  // A buffer of page_size bytes, its contents left over from earlier use.
  uint8_t* take() {
    if (spare_.empty()) add_slab();
    uint8_t* buffer = spare_.back();
    spare_.pop_back();
    return buffer;
  }

  void give_back(uint8_t* buffer) { spare_.push_back(buffer); }

  // Buffers allocated and not in use.
  uint64_t spare() const { return spare_.size(); }
  // Buffers allocated in all.
  uint64_t allocated() const { return allocated_; }

  // Frees every slab; buffers handed out are invalid from here.
  void clear() {
    spare_.clear();
    spare_.shrink_to_fit();
    slabs_.clear();
    allocated_ = 0;
  }

 private:
  static constexpr uint64_t kSlabBytes = uint64_t{2} << 20;  // one huge page (see above)

  struct FreeSlab {
    std::align_val_t alignment;
    void operator()(uint8_t* p) const { ::operator delete(p, alignment); }
  };

  void add_slab() {
    // Within the limit; past it (which the cache's own bound rules out)
    // one buffer at a time rather than fail.
    const uint64_t room = limit_ > allocated_ ? limit_ - allocated_ : 1;
    const uint64_t count = std::min(slab_pages_, room);
    const uint64_t bytes = count * page_size_;
    // A whole slab is aligned to its size, or no huge page can back it.
    const auto alignment = static_cast<std::align_val_t>(bytes == kSlabBytes ? kSlabBytes : page_size_);
    std::unique_ptr<uint8_t, FreeSlab> slab(
        static_cast<uint8_t*>(::operator new(static_cast<size_t>(bytes), alignment)),
        FreeSlab{alignment});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes == kSlabBytes) (void)madvise(slab.get(), bytes, MADV_HUGEPAGE);  // only a hint
#endif
    uint8_t* base = slab.get();
    slabs_.push_back(std::move(slab));
    // Handed out from the slab's start: take() pops from the back.
    for (uint64_t i = count; i-- > 0;) spare_.push_back(base + i * page_size_);
    allocated_ += count;
  }

  uint32_t page_size_;
  uint64_t limit_;
  uint64_t slab_pages_;
  uint64_t allocated_ = 0;
  std::vector<std::unique_ptr<uint8_t, FreeSlab>> slabs_;
  std::vector<uint8_t*> spare_;
};

}  // namespace qcowkit::cache
