#include "serve/exported_image.hpp"

#include <algorithm>
#include <vector>

namespace qcowkit::serve {

ExportedImage::ExportedImage(std::shared_ptr<Qcow2Image> image, TrimMode trim, bool writable)
    : image_(std::move(image)), trim_(trim), writable_(writable) {}

BlockSizes ExportedImage::block_sizes() const {
  BlockSizes b;
  const uint32_t sector = image_->info().sector_size;
  b.minimum = sector > 0 ? sector : 1;
  // NBD wants the preferred size a power of two from 512 to 32M.
  const uint32_t cluster = std::clamp<uint32_t>(image_->cluster_size(), 512, 32u << 20);
  b.preferred = std::max(cluster, b.minimum);
  b.maximum = 0xffffffff;
  return b;
}

Status ExportedImage::read(uint64_t offset, ByteSpan buffer) { return image_->read(offset, buffer); }

Status ExportedImage::write(uint64_t offset, ConstByteSpan data, bool fua) {
  return image_->write(offset, data, WriteFlags{fua});
}

Status ExportedImage::flush() { return image_->flush(); }

Status ExportedImage::trim(uint64_t offset, uint64_t length, bool fua) {
  Status st = trim_ == TrimMode::zero ? image_->write_zeroes(offset, length, ZeroFlags{})
                                      : image_->discard(offset, length);
  if (st.ok() && fua) st = image_->flush();
  return st;
}

Status ExportedImage::zero(uint64_t offset, uint64_t length, ZeroFlags flags) {
  if (flags.fast_only && !image_->can_zero_fast(offset, length))
    return make_error(ENOTSUP, "a fast zero here would have to write data");
  return image_->write_zeroes(offset, length, flags);
}

Status ExportedImage::extents(uint64_t offset, uint64_t length, bool first_only,
                              const std::function<Status(const Extent&)>& add) {
  constexpr size_t enough_extents = 64;
  const uint64_t end = offset + length;
  uint64_t pos = offset;
  uint64_t window = 64u << 20;
  for (size_t added = 0; pos < end && added < enough_extents; window *= 8) {
    const uint64_t n = std::min<uint64_t>(window, end - pos);
    auto result = image_->extents(pos, n);
    if (!result.ok()) return with_context(std::move(result).error(),
                                          "extents at offset " + std::to_string(pos));
    if (result->empty()) break;
    for (const Extent& e : *result) {
      QK_TRY(add(e));
      if (first_only) return {};
      pos = e.offset + e.length;
      ++added;
    }
  }
  return {};
}

Status ExportedImage::cache(uint64_t offset, uint64_t length) {
  constexpr uint64_t chunk = 4u << 20;
  std::vector<uint8_t> buffer(std::min(length, chunk));
  for (uint64_t done = 0; done < length;) {
    const uint64_t n = std::min(length - done, chunk);
    QK_TRY(image_->read(offset + done, ByteSpan(buffer.data(), n)));
    done += n;
  }
  return {};
}

}  // namespace qcowkit::serve
