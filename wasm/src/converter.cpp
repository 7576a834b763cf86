#include "converter.hpp"

#include <algorithm>

#include "js_codecs.hpp"

namespace qcowkit::wasm {
namespace {

constexpr uint64_t kChunk = 4u << 20;  // bytes read from the source per request

uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

}  // namespace

Result<std::unique_ptr<Converter>> Converter::start(ImageSession& source,
                                                    std::shared_ptr<BlockDevice> destination,
                                                    const ConvertOptions& options) {
  const uint64_t size = source.virtual_size();
  if (options.part) {
    if (options.to != ImageFormat::raw || options.compress)
      return make_error(EINVAL, "convert: a part can only be converted to raw");
    if (options.part_start > options.part_end || options.part_end > size ||
        options.part_start % kChunk != 0 ||
        (options.part_end % kChunk != 0 && options.part_end != size))
      return make_error(EINVAL, "convert: part " + std::to_string(options.part_start) + ".." +
                                    std::to_string(options.part_end) + " is not a " +
                                    std::to_string(kChunk) + "-byte aligned range of the " +
                                    std::to_string(size) + "-byte image");
    if (destination->info().size != size)
      return make_error(EINVAL, "convert: the destination of a part must already be " +
                                    std::to_string(size) + " bytes");
    return std::unique_ptr<Converter>(new Converter(source, std::move(destination), nullptr, options));
  }
  QK_TRY(destination->resize(0));
  std::unique_ptr<Qcow2Image> qcow2;
  if (options.to == ImageFormat::qcow2) {
    const uint32_t cs = options.cluster_size;
    if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)) != 0)
      return make_error(EINVAL, "convert: cluster size " + std::to_string(cs) +
                                    " is not a power of two from 512 to 2 MiB");
    Qcow2CreateOptions create;
    create.size = round_up(size, 512);  // qcow2 sizes are whole sectors, as qemu-img rounds
    create.cluster_size = cs;
    Qcow2OpenOptions open;
    open.codecs = &js_codecs();
    open.metadata_cache_bytes = 8u << 20;
    QK_ASSIGN_OR_RETURN(qcow2, Qcow2Image::create(destination, create, open));
  } else {
    if (options.compress)
      return make_error(EINVAL, "convert: compression needs a qcow2 destination");
    // A fresh file of the right size reads as zeroes: only data is written.
    QK_TRY(destination->resize(size));
  }
  return std::unique_ptr<Converter>(
      new Converter(source, std::move(destination), std::move(qcow2), options));
}

Converter::Converter(ImageSession& source, std::shared_ptr<BlockDevice> destination,
                     std::unique_ptr<Qcow2Image> qcow2, const ConvertOptions& options)
    : source_(source),
      destination_(std::move(destination)),
      qcow2_(std::move(qcow2)),
      options_(options) {
  begin_ = options.part ? options.part_start : 0;
  end_ = options.part ? options.part_end : source_.virtual_size();
  progress_.total = end_ - begin_;
  copied_until_ = begin_;
}

Result<ConvertProgress> Converter::step(uint64_t budget) {
  if (closed_) return make_error(EBADF, "convert: the conversion was closed");
  BlockDevice& src = source_.guest();
  const uint64_t pos = begin_ + progress_.done;
  const uint64_t end = std::min(end_, pos + std::max(budget, kChunk));
  // Zero and unallocated ranges need nothing: the destination starts empty.
  QK_TRY(for_each_extent(src, pos, end - pos, [&](const Extent& e) -> Status {
    if (e.kind != ExtentKind::data) return {};
    // For qcow2, whole destination clusters are copied so each can be
    // compressed; copied_until_ keeps a cluster from being written twice.
    const uint64_t align = qcow2_ ? options_.cluster_size : 1;
    const uint64_t from = std::max(e.offset / align * align, copied_until_);
    const uint64_t to = std::min(round_up(e.offset + e.length, align), end_);
    if (from >= to) return {};
    copied_until_ = to;
    return copy_data(from, to - from);
  }));
  progress_.done = end - begin_;
  if (progress_.done == progress_.total && !progress_.finished) {
    QK_TRY(target().flush());
    progress_.finished = true;
  }
  return progress_;
}

Status Converter::copy_data(uint64_t offset, uint64_t length) {
  BlockDevice& src = source_.guest();
  const uint64_t end = offset + length;
  // Chunks end on multiples of kChunk, hence on cluster boundaries too.
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t n = std::min(end - pos, kChunk - pos % kChunk);
    buffer_.assign(n, 0);
    QK_TRY(src.read(pos, ByteSpan(buffer_)));
    if (qcow2_) {
      // A source whose size is not whole sectors: its tail is padded with
      // zeroes up to the end of the (rounded-up) image.
      const uint64_t image_size = qcow2_->info().size;
      if (pos + n == end_ && image_size > end_)
        buffer_.resize(image_size - pos, 0);
      QK_TRY(write_clusters(pos, buffer_));
    } else if (!is_all_zero(buffer_)) {
      QK_TRY(destination_->write(pos, buffer_));
    }
    pos += n;
  }
  return {};
}

// Writes one chunk into the new qcow2 image cluster by cluster, skipping
// clusters that are all zero (they stay unallocated) and joining runs of
// data clusters into one write when not compressing.
Status Converter::write_clusters(uint64_t offset, ConstByteSpan data) {
  const uint64_t cs = options_.cluster_size;
  const uint64_t image_size = qcow2_->info().size;
  size_t run_start = 0, run_length = 0;
  auto flush_run = [&]() -> Status {
    if (run_length == 0) return {};
    Status st = qcow2_->write(offset + run_start, data.subspan(run_start, run_length));
    run_length = 0;
    return st;
  };
  for (size_t at = 0; at < data.size();) {
    // The first piece may start mid-cluster when an extent does.
    const uint64_t guest = offset + at;
    size_t n = static_cast<size_t>(std::min<uint64_t>(cs - guest % cs, data.size() - at));
    ConstByteSpan piece = data.subspan(at, n);
    if (is_all_zero(piece)) {
      QK_TRY(flush_run());
    } else if (options_.compress && guest % cs == 0 && (n == cs || guest + n == image_size)) {
      QK_TRY(flush_run());
      QK_TRY(qcow2_->write_compressed(guest, piece));
    } else {
      if (run_length == 0) run_start = at;
      run_length += n;
    }
    at += n;
  }
  return flush_run();
}

Status Converter::close() {
  if (closed_) return {};
  closed_ = true;
  Status first;
  if (qcow2_) first = qcow2_->close();
  Status st = destination_->close();
  if (first.ok() && !st.ok()) first = st;
  return first;
}

}  // namespace qcowkit::wasm
