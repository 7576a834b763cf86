// ExportedImage: NBD's request semantics over one open qcow2 image. The
// plugin and the qcow2 filter both serve through it, so what a trim, a fast
// zero, FUA or an extents request does is decided here once; the adapters
// only convert nbdkit's arguments and report errors (serve/nbdkit/).
//
// Ownership: shares the Qcow2Image (whoever opened it closes it).
// Thread safety: every method may be called from many threads at once, as
// Qcow2Image's may; nothing here holds state that changes after construction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "qcowkit/block_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "serve/serve_options.hpp"

namespace qcowkit::serve {

struct BlockSizes {
  uint32_t minimum = 1, preferred = 4096, maximum = 0xffffffff;
};

class ExportedImage {
 public:
  // `writable`: the image was opened for writing (a connection may still be
  // read-only).
  ExportedImage(std::shared_ptr<Qcow2Image> image, TrimMode trim, bool writable);

  Qcow2Image& image() { return *image_; }
  uint64_t size() const { return image_->info().size; }
  // The image's sector as the minimum, its cluster as the preferred size.
  BlockSizes block_sizes() const;
  // Writes are offered while the image is writable and not found corrupt.
  bool can_write() const { return writable_ && !image_->is_corrupt(); }
  bool can_trim() const { return trim_ != TrimMode::off; }

  Status read(uint64_t offset, ByteSpan buffer);
  Status write(uint64_t offset, ConstByteSpan data, bool fua);
  Status flush();
  // Frees the range, or zeroes it under trim=zero; fua flushes afterwards.
  Status trim(uint64_t offset, uint64_t length, bool fua);
  // A fast zero that would have to write data fails with ENOTSUP before
  // anything is touched, so the client can fall back to its own way.
  Status zero(uint64_t offset, uint64_t length, ZeroFlags flags);
  // Calls `add` for the extents of a bounded window at `offset` (NBD lets a
  // reply stop short; the client asks again from where it ends): a small
  // window first, growing only while the answer is a few large extents.
  // Mapping the whole range instead would make every read on a sparse image
  // pay for a map of the rest of it. With `first_only`, one extent.
  Status extents(uint64_t offset, uint64_t length, bool first_only,
                 const std::function<Status(const Extent&)>& add);
  // Reads the range so its metadata and data are in the caches.
  Status cache(uint64_t offset, uint64_t length);

  // True for the error of a fast zero refused on purpose: the client falls
  // back without it being worth a log line.
  static bool is_fast_zero_refusal(const ZeroFlags& flags, const Error& error) {
    return flags.fast_only && error.code == ENOTSUP;
  }

 private:
  std::shared_ptr<Qcow2Image> image_;
  TrimMode trim_;
  bool writable_;
};

}  // namespace qcowkit::serve
