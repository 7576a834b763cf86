#include "formats/vmdk_stream_writer.hpp"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/vmdk_layout.hpp"
#include "qcowkit/codec.hpp"
#include "qcowkit/mutex.hpp"
#include "util/endian_le.hpp"

namespace qcowkit::formats::vmdk {
namespace {

// One compressed grain as the file holds it: a marker (the grain's first
// sector, the compressed length), the zlib stream, zeroes to a sector end.
std::vector<uint8_t> packed_record(ConstByteSpan packed, uint64_t lba) {
  std::vector<uint8_t> record((12 + packed.size() + 511) / 512 * 512, 0);
  store_le64(record.data(), lba);
  store_le32(record.data() + 8, uint32_t(packed.size()));
  std::memcpy(record.data() + 12, packed.data(), packed.size());
  return record;
}

Result<std::vector<uint8_t>> grain_record(ConstByteSpan grain, uint64_t lba) {
  const Codec* codec = builtin_codecs().zlib_stream;
  if (!codec) return make_error(ENOTSUP, "this build has no zlib codec for VMDK grains");
  // A grain that does not shrink is still stored compressed: the format
  // has no other way.
  QK_ASSIGN_OR_RETURN(auto packed, codec->compress(grain, 2 * grain.size()));
  if (packed.empty()) return make_error(EIO, "vmdk image: a grain did not compress");
  return packed_record(packed, lba);
}

// A metadata marker sector: how many sectors follow, and their type.
std::vector<uint8_t> marker(uint64_t sectors, uint32_t type) {
  std::vector<uint8_t> m(512, 0);
  store_le64(m.data(), sectors);
  store_le32(m.data() + 12, type);
  return m;
}
constexpr uint32_t kMarkerGrainTable = 1, kMarkerGrainDirectory = 2;

// Two placements of the same grains:
//  * onto a file (`file_`): the tables sit at the front (qemu-img's layout)
//    and are rewritten on every flush, the end marker after the last grain;
//  * onto a forward-only ByteSink (`sink_`): nothing may be written twice,
//    so the header says the directory is "at the end"; grains follow the
//    descriptor; close() appends every non-empty grain table (each behind a
//    marker), the directory (behind its marker), a footer marker, the footer
//    (the header again, with the directory's offset) and the end-of-stream
//    marker: VMware's own stream layout, which QEMU and open_vmdk read.
//    flush() can make nothing durable before that and does nothing.
class StreamWriter final : public VmdkStreamWriter {
 public:
  StreamWriter(ByteSink& sink, const Header& h) : StreamWriter(nullptr, h) { sink_ = &sink; }
  StreamWriter(std::shared_ptr<BlockDevice> file, const Header& h)
      : file_(std::move(file)),
        h_(h),
        grain_bytes_(h.grain * 512),
        size_(h.capacity * 512),
        grains_((h.capacity + h.grain - 1) / h.grain),
        gt_(grains_, 0),
        buffer_(grain_bytes_, 0),
        next_free_(h.overhead * 512) {}
  ~StreamWriter() override { (void)close(); }

  // Forward-only: the header (directory at the end) and the descriptor,
  // padded to the first grain.
  Status start(const std::string& descriptor) {
    MutexLock lock(mutex_);
    std::vector<uint8_t> head(h_.overhead * 512, 0);
    build_header(h_, head.data());
    std::memcpy(head.data() + h_.descriptor_offset * 512, descriptor.data(),
                std::min<size_t>(descriptor.size(), h_.descriptor_size * 512));
    return append(head);
  }

  DeviceInfo info() const override { return DeviceInfo{size_, 1, false}; }

  Status read(uint64_t, ByteSpan) override {
    return make_error(ENOTSUP, "a streamOptimized VMDK being written cannot be read; reopen it");
  }

  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags) override {
    MutexLock lock(mutex_);
    QK_TRY(check(offset, data.size(), "write"));
    uint64_t done = 0;
    while (done < data.size()) {
      const uint64_t pos = offset + done;
      QK_TRY(move_to(pos / grain_bytes_));
      const uint64_t in = pos % grain_bytes_;
      const uint64_t n = std::min<uint64_t>(grain_bytes_ - in, data.size() - done);
      std::memcpy(buffer_.data() + in, data.data() + done, n);
      dirty_ = true;
      done += n;
    }
    if (flags.fua) return flush_locked();
    return {};
  }

  // Zeroes need no grain unless they fall into the one being filled.
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) override {
    MutexLock lock(mutex_);
    QK_TRY(check(offset, length, "write_zeroes"));
    if (length == 0) return {};
    const uint64_t first = offset / grain_bytes_;
    if (first < current_) return out_of_order(offset);
    if (first == current_) {
      const uint64_t in = offset % grain_bytes_;
      const uint64_t n = std::min<uint64_t>(grain_bytes_ - in, length);
      std::memset(buffer_.data() + in, 0, n);
      dirty_ = true;
    }
    if (flags.fua) return flush_locked();
    return {};
  }

  Status discard(uint64_t offset, uint64_t length) override {
    return write_zeroes(offset, length, {});
  }
  Status resize(uint64_t) override { return make_error(ENOTSUP, "vmdk image: resizing is not supported"); }
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    if (length == 0) return std::vector<Extent>{};
    return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};
  }

  Status flush() override {
    MutexLock lock(mutex_);
    if (closed_) return make_error(EBADF, "vmdk image: flush: image is closed");
    return flush_locked();
  }

  Status close() override {
    MutexLock lock(mutex_);
    if (closed_) return {};
    closed_ = true;
    if (sink_) return write_tail();
    return flush_locked();
  }

 private:
  Status check(uint64_t offset, uint64_t length, const char* op) const QK_REQUIRES(mutex_) {
    if (closed_) return make_error(EBADF, std::string("vmdk image: ") + op + ": image is closed");
    Status st = check_request(info(), offset, length, true, op);
    if (!st.ok()) return with_context(std::move(st).error(), "vmdk image");
    return {};
  }

  Status out_of_order(uint64_t offset) const {
    return make_error(ENOTSUP, "vmdk image: streamOptimized images are written in order; offset " +
                                   std::to_string(offset) + " lies before the grain being written");
  }

  // Makes `grain` the one being filled, storing the current one first.
  Status move_to(uint64_t grain) QK_REQUIRES(mutex_) {
    if (grain == current_) return {};
    if (grain < current_) return out_of_order(grain * grain_bytes_);
    QK_TRY(store_current());
    std::fill(buffer_.begin(), buffer_.end(), 0);
    current_ = grain;
    return {};
  }

  // Compresses the grain being filled and appends it (nothing for zeroes).
  // The buffer is kept: after a flush, later writes into the same grain
  // store it again, whole (the earlier copy is left unused).
  Status store_current() QK_REQUIRES(mutex_) {
    if (!dirty_) return {};
    dirty_ = false;
    if (is_all_zero(buffer_)) {
      if (gt_[current_] != 0) tables_dirty_ = true;
      gt_[current_] = 0;
      return {};
    }
    QK_ASSIGN_OR_RETURN(auto record, grain_record(buffer_, current_ * h_.grain));
    return store_record(current_, record);
  }

  // Appends a grain's record and points its table entry at it.
  Status store_record(uint64_t grain, ConstByteSpan record) QK_REQUIRES(mutex_) {
    if (sink_) {  // forward-only: a grain is stored once, when the writes have left it
      QK_TRY(check_offset());
      gt_[grain] = uint32_t(written_ / 512);
      return append(record);
    }
    if (next_free_ / 512 > UINT32_MAX) return make_error(EFBIG, "vmdk image: the file outgrows 32-bit grain entries");
    QK_TRY(file_->resize(next_free_ + record.size()));
    QK_TRY(file_->write(next_free_, record));
    gt_[grain] = uint32_t(next_free_ / 512);
    next_free_ += record.size();
    tables_dirty_ = true;
    return {};
  }

 public:
  Status store_compressed_grain(uint64_t offset, ConstByteSpan packed) override {
    MutexLock lock(mutex_);
    if (offset % grain_bytes_ != 0 || packed.empty())
      return make_error(EINVAL, "vmdk image: a compressed grain must start on a grain and hold bytes");
    QK_TRY(check(offset, std::min<uint64_t>(grain_bytes_, size_ - std::min(offset, size_)), "store"));
    const uint64_t grain = offset / grain_bytes_;
    if (grain == current_ && dirty_)
      return make_error(EINVAL, "vmdk image: grain " + std::to_string(grain) + " is already being written");
    QK_TRY(move_to(grain));
    QK_TRY(store_record(grain, packed_record(packed, grain * h_.grain)));
    // The grain is done: the writes move on to the next one.
    current_ = grain + 1;
    return {};
  }

 private:

  // The grain being filled, every table (both copies), the end marker.
  Status flush_locked() QK_REQUIRES(mutex_) {
    if (sink_) return {};
    QK_TRY(store_current());
    if (tables_dirty_) {
      const uint64_t gd_sectors = directory_sectors(h_);
      std::vector<uint8_t> table(kGtEntries * 4);
      for (uint64_t t = 0; t * kGtEntries < grains_; ++t) {
        std::fill(table.begin(), table.end(), 0);
        for (uint64_t i = 0; i < kGtEntries && t * kGtEntries + i < grains_; ++i)
          store_le32(&table[i * 4], gt_[t * kGtEntries + i]);
        for (uint64_t dir : {h_.rgd_offset, h_.gd_offset})
          QK_TRY(file_->write((dir + gd_sectors + t * kTableSectors) * 512, table));
      }
      tables_dirty_ = false;
    }
    // End of stream: one zeroed marker sector after the last grain.
    QK_TRY(file_->resize(next_free_ + 512));
    QK_TRY(file_->write_zeroes(next_free_, 512));
    return file_->flush();
  }

  // Forward-only: the last grain, the tables, the directory and the footer.
  Status write_tail() QK_REQUIRES(mutex_) {
    QK_TRY(store_current());
    const uint64_t tables = (grains_ + kGtEntries - 1) / kGtEntries;
    std::vector<uint32_t> gd(tables, 0);
    std::vector<uint8_t> table(kGtEntries * 4);
    for (uint64_t t = 0; t < tables; ++t) {
      bool any = false;
      std::fill(table.begin(), table.end(), 0);
      for (uint64_t i = 0; i < kGtEntries && t * kGtEntries + i < grains_; ++i) {
        store_le32(&table[i * 4], gt_[t * kGtEntries + i]);
        any |= gt_[t * kGtEntries + i] != 0;
      }
      if (!any) continue;
      QK_TRY(append(marker(kTableSectors, kMarkerGrainTable)));
      QK_TRY(check_offset());
      gd[t] = uint32_t(written_ / 512);
      QK_TRY(append(table));
    }
    const uint64_t gd_sectors = directory_sectors(h_);
    std::vector<uint8_t> directory(gd_sectors * 512, 0);
    for (uint64_t t = 0; t < tables; ++t) store_le32(&directory[t * 4], gd[t]);
    QK_TRY(append(marker(gd_sectors, kMarkerGrainDirectory)));
    Header footer = h_;
    footer.gd_offset = written_ / 512;
    QK_TRY(append(directory));
    QK_TRY(append(marker(1, kMarkerFooter)));
    std::vector<uint8_t> sector(512, 0);
    build_header(footer, sector.data());
    QK_TRY(append(sector));
    return append(marker(0, kMarkerEndOfStream));
  }

  Status append(ConstByteSpan bytes) QK_REQUIRES(mutex_) {
    if (auto st = sink_->write(bytes); !st.ok())
      return with_context(st.error(), "vmdk stream: writing at offset " + std::to_string(written_));
    written_ += bytes.size();
    return {};
  }
  Status check_offset() const QK_REQUIRES(mutex_) {
    if (written_ / 512 > UINT32_MAX)
      return make_error(EFBIG, "vmdk image: the file outgrows 32-bit grain entries");
    return {};
  }

  Mutex mutex_;  // writes come one at a time; it guards against misuse only
  ByteSink* sink_ = nullptr;  // set: forward-only, and file_ is null
  std::shared_ptr<BlockDevice> file_;
  const Header h_;
  const uint64_t grain_bytes_, size_, grains_;
  std::vector<uint32_t> gt_ QK_GUARDED_BY(mutex_);
  std::vector<uint8_t> buffer_ QK_GUARDED_BY(mutex_);
  uint64_t current_ QK_GUARDED_BY(mutex_) = 0;  // the grain being filled
  bool dirty_ QK_GUARDED_BY(mutex_) = false;
  bool tables_dirty_ QK_GUARDED_BY(mutex_) = false;
  bool closed_ QK_GUARDED_BY(mutex_) = false;
  uint64_t next_free_ QK_GUARDED_BY(mutex_);
  uint64_t written_ QK_GUARDED_BY(mutex_) = 0;  // forward-only: bytes appended
};

}  // namespace

std::unique_ptr<BlockDevice> make_stream_writer(std::shared_ptr<BlockDevice> file, const Header& h) {
  return std::make_unique<StreamWriter>(std::move(file), h);
}

Result<std::unique_ptr<VmdkStreamWriter>> make_forward_stream_writer(ByteSink& sink, uint64_t size,
                                                                const std::string& file_name) {
  Header h = new_header(size, true);
  // One directory, "at the end" until the footer says where.
  h.flags &= ~kFlagRedundantTable;
  h.rgd_offset = 0;
  h.gd_offset = kGdAtEnd;
  h.overhead = (h.descriptor_offset + h.descriptor_size + h.grain - 1) / h.grain * h.grain;
  const uint64_t grains = (h.capacity + h.grain - 1) / h.grain;
  const uint64_t tables = (grains + kGtEntries - 1) / kGtEntries;
  if (tables * kGtEntries * 4 > kMaxTableBytes)
    return make_error(EFBIG, "VMDK images are at most " + std::to_string((kMaxTableBytes / 4) * 65536 >> 40) +
                                 " TiB here; " + std::to_string(h.capacity * 512) + " bytes asked for");
  std::random_device random;
  const std::string text = build_descriptor("streamOptimized", h.capacity, file_name, random());
  auto writer = std::make_unique<StreamWriter>(sink, h);
  QK_TRY(writer->start(text));
  return std::unique_ptr<VmdkStreamWriter>(std::move(writer));
}

}  // namespace qcowkit::formats::vmdk
