// Reading a persistent bitmap back as ranges of the virtual disk, so that a
// backup tool can learn what changed without QEMU.
#include "qcow2/image_impl.hpp"
#include "util/endian.hpp"
#include "util/hex.hpp"

namespace qcowkit {

using namespace qcow2;

Result<std::vector<Extent>> Qcow2Image::Impl::bitmap_ranges(const std::string& name) {
  MutexLock lock(mutex_);
  const BitmapEntry* bitmap = nullptr;
  for (const BitmapEntry& b : bitmaps_.entries)
    if (b.info.name == name) bitmap = &b;
  if (!bitmap) return make_error(ENOENT, "bitmap '" + name + "' not found");
  return bitmap_ranges_locked(*bitmap);
}

Result<std::vector<Extent>> Qcow2Image::Impl::bitmap_ranges_locked(const BitmapEntry& entry) {
  const BitmapEntry* bitmap = &entry;
  const std::string& name = entry.info.name;
  if (!(header_.autoclear_features & kAutoclearBitmaps) || (bitmap->info.flags & kBitmapInUse))
    return make_error(EINVAL, "bitmap '" + name + "' is inconsistent (the image was not closed "
                              "cleanly since it was last written): it cannot say what changed");
  if (bitmap->info.granularity_bits < 9 || bitmap->info.granularity_bits > 31)
    return make_error(EINVAL, "bitmap '" + name + "' has an invalid granularity");
  const uint64_t granule = uint64_t{1} << bitmap->info.granularity_bits;
  const uint64_t bits_per_cluster = cluster_size_ * 8;
  const uint64_t granules = (header_.size + granule - 1) / granule;
  const uint64_t needed = (granules + bits_per_cluster - 1) / bits_per_cluster;
  if (needed > bitmap->table_size)
    return make_error(EINVAL, "bitmap '" + name + "' has a table too small for the image");
  std::vector<uint8_t> table(needed * 8);
  QK_TRY(file_->read(bitmap->table_offset, table));

  std::vector<Extent> out;
  auto add = [&](uint64_t first_granule, uint64_t count, bool dirty) {
    const uint64_t start = first_granule * granule;
    const uint64_t end = std::min(header_.size, (first_granule + count) * granule);
    if (end <= start) return;
    const ExtentKind kind = dirty ? ExtentKind::data : ExtentKind::hole;
    if (!out.empty() && out.back().kind == kind && out.back().offset + out.back().length == start)
      out.back().length += end - start;
    else
      out.push_back(Extent{start, end - start, kind});
  };
  std::vector<uint8_t> cluster(cluster_size_);
  const uint64_t file_size = file_->info().size;
  for (uint64_t i = 0; i < needed; ++i) {
    const uint64_t entry = load_be64(table.data() + i * 8);
    const uint64_t host = entry & kOffsetMask;
    const uint64_t first = i * bits_per_cluster;
    const uint64_t count = std::min(bits_per_cluster, granules - first);
    if (host == 0) {
      add(first, count, entry & 1);  // bit 0: every granule dirty
      continue;
    }
    if (host % cluster_size_ != 0 || host >= file_size)
      return make_error(EINVAL, "bitmap '" + name + "' names a data cluster at " + hex(host) +
                                    " outside the file");
    QK_TRY(file_->read(host, cluster));
    for (uint64_t g = 0; g < count; ++g) add(first + g, 1, (cluster[g / 8] >> (g % 8)) & 1);
  }
  return out;
}

}  // namespace qcowkit
