#include "converter.hpp"

#include <algorithm>

#include "js_codecs.hpp"
#include "qcowkit/qcow2_options.hpp"

namespace qcowkit::wasm {
namespace {

constexpr uint64_t kChunk = 4u << 20;  // bytes read from the source per request

uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

// A destination that takes appends only (the page's streamed download, a
// JS device that refuses any write but the next bytes): each write grows it
// to take exactly those bytes, then writes them where the last ended.
class AppendingSink final : public ByteSink {
 public:
  explicit AppendingSink(BlockDevice& device) : device_(device) {}
  Status write(ConstByteSpan bytes) override {
    if (bytes.empty()) return {};
    QK_TRY(device_.resize(end_ + bytes.size()));
    QK_TRY(device_.write(end_, bytes));
    end_ += bytes.size();
    return {};
  }

 private:
  BlockDevice& device_;
  uint64_t end_ = 0;
};

// The stream writer's memory for the scan's output kept for the data pass
// (see Qcow2StreamOptions::cache_bytes): bounded so the tab stays small.
constexpr uint64_t kStreamCacheBytes = 64u << 20;

}  // namespace

Result<std::unique_ptr<Converter>> Converter::start(ImageSession& source,
                                                    std::shared_ptr<BlockDevice> destination,
                                                    const ConvertOptions& options) {
  const uint64_t size = source.virtual_size();
  if (options.part) {
    if (options.to != "raw" || options.compress)
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
    return std::unique_ptr<Converter>(
        new Converter(source, std::move(destination), nullptr, nullptr, options));
  }
  if (options.compress && options.to != "qcow2")
    return make_error(EINVAL, "convert: compression needs a qcow2 destination");
  if (options.to == "qcow2" && !is_valid_qcow2_cluster_size(options.cluster_size))
    return make_error(EINVAL, "convert: cluster size " + std::to_string(options.cluster_size) +
                                  " is not a power of two from 512 to 2 MiB");
  if (options.stream) {
    if (options.to != "qcow2" || options.size_alignment > 1 || !options.format_options.empty())
      return make_error(EINVAL, "convert: only qcow2 (with compress and clusterSize) is streamed");
    if (destination->info().size != 0)
      return make_error(EINVAL, "convert: a streamed image's destination must start empty");
    return std::unique_ptr<Converter>(new Converter(source, std::move(destination), nullptr, nullptr, options));
  }
  const qcowkit::ImageFormat* other = find_image_format(options.to);
  if (options.to != "raw" && options.to != "qcow2" && !other)
    return make_error(EINVAL, "convert: unknown target format '" + options.to + "' (use raw, qcow2 or one of " +
                                  [] {
                                    std::string names;
                                    for (const auto& n : image_format_names()) names += (names.empty() ? "" : ", ") + n;
                                    return names;
                                  }() + ")");
  if (!options.format_options.empty()) {
    if (!other)
      return make_error(EINVAL, "convert: " + options.to + " output takes no format options here");
    QK_TRY(other->check_options(options.format_options));
  }
  uint64_t new_size = size;
  if (options.size_alignment > 1) {
    const uint64_t a = options.size_alignment;
    if ((a & (a - 1)) != 0 || a > (uint64_t{1} << 30))
      return make_error(EINVAL, "convert: size alignment " + std::to_string(a) +
                                    " is not a power of two up to 1 GiB");
    new_size = round_up(size, a);
  }
  QK_TRY(destination->resize(0));
  std::unique_ptr<BlockDevice> image;
  Qcow2Image* qcow2 = nullptr;
  if (other) {
    auto made = other->create(destination, new_size, options.format_options, options.file_name);
    if (!made.ok()) return with_context(std::move(made).error(), "convert: creating the " + options.to + " image");
    image = std::move(made).value();
  } else if (options.to == "qcow2") {
    Qcow2CreateOptions create;
    create.size = round_up(new_size, 512);  // qcow2 sizes are whole sectors, as qemu-img rounds
    create.cluster_size = options.cluster_size;
    Qcow2OpenOptions open;
    open.codecs = &js_codecs();
    open.metadata_cache_bytes = 8u << 20;
    QK_ASSIGN_OR_RETURN(auto made, Qcow2Image::create(destination, create, open));
    qcow2 = made.get();
    image = std::move(made);
  } else {
    // A fresh file of the right size reads as zeroes: only data is written.
    QK_TRY(destination->resize(new_size));
  }
  return std::unique_ptr<Converter>(
      new Converter(source, std::move(destination), std::move(image), qcow2, options));
}

Converter::Converter(ImageSession& source, std::shared_ptr<BlockDevice> destination,
                     std::unique_ptr<BlockDevice> image, Qcow2Image* qcow2, const ConvertOptions& options)
    : source_(source),
      destination_(std::move(destination)),
      image_(std::move(image)),
      qcow2_(qcow2),
      options_(options) {
  progress_.total = options.part ? options.part_end - options.part_start : source.virtual_size();
}

// Sets up the sink and the engine: the destination reads as zeroes (new, or
// a part of a file of zeroes), so only data is written; a qcow2 target gets
// whole clusters (compressed when asked), a short source end padded; a
// format that takes writes only in guest order (vmdk streamOptimized) gets
// them so (the engine commits in order here anyway, as qemu-img writes).
Status Converter::begin() {
  BlockDevice& src = source_.guest();
  DeviceSinkOptions sink;
  sink.destination_is_zero = true;
  sink.source_size = src.info().size;
  sink.flush_at_end = true;
  sink.operation = "convert";
  CopyEngineOptions engine;
  engine.chunk_size = kChunk;
  engine.operation = "convert";
  if (options_.part) {
    engine.begin = options_.part_start;
    engine.end = options_.part_end;
  }
  engine.in_order = true;
  if (image_ && !qcow2_) engine.granule = 65536;  // the formats' block sizes divide it
  if (qcow2_) {
    const uint64_t cs = options_.cluster_size;
    engine.granule = cs;
    sink.cluster_size = cs;
    if (options_.compress) {
      const Codec* codec = js_codecs().get(qcow2_->details().compression_type);
      if (!codec) return make_error(ENOTSUP, "convert: no codec to compress with");
      Qcow2Image* image = qcow2_;
      sink.compress_cluster = [codec, cs](ConstByteSpan cluster) {
        return codec->compress(cluster, cs - 1);
      };
      sink.store_packed = [image](uint64_t offset, ConstByteSpan packed) {
        return image->store_compressed(offset, packed);
      };
    }
  }
  sink_ = std::make_unique<DeviceSink>(target(), std::move(sink));
  QK_ASSIGN_OR_RETURN(engine_, CopyEngine::create(src, *sink_, engine));
  return {};
}

// The stream writer with the module's codecs, one step at a time (no
// threads here); it reads the source's guest view, as the engine does.
Status Converter::begin_stream() {
  Qcow2StreamOptions o;
  o.layout.cluster_size = options_.cluster_size;
  o.compress = options_.compress;
  o.codecs = &js_codecs();
  o.cache_bytes = kStreamCacheBytes;
  append_ = std::make_unique<AppendingSink>(*destination_);
  QK_ASSIGN_OR_RETURN(stream_, Qcow2StreamWriter::create(source_.guest(), *append_, o));
  return {};
}

Result<ConvertProgress> Converter::step(uint64_t budget) {
  if (closed_) return make_error(EBADF, "convert: the conversion was closed");
  if (options_.stream) {
    if (!stream_) QK_TRY(begin_stream());
    QK_ASSIGN_OR_RETURN(CopyProgress p, stream_->step(std::max(budget, kChunk)));
    progress_ = {p.done, p.total, p.finished};
    return progress_;
  }
  if (!engine_) QK_TRY(begin());
  QK_ASSIGN_OR_RETURN(CopyProgress p, engine_->step(std::max(budget, kChunk)));
  progress_.done = p.done;
  progress_.total = p.total;
  progress_.finished = p.finished;
  return progress_;
}

Status Converter::close() {
  if (closed_) return {};
  closed_ = true;
  stream_.reset();  // it refers to the sink over destination_
  Status first;
  if (image_) first = image_->close();
  Status st = destination_->close();
  if (first.ok() && !st.ok()) first = st;
  return first;
}

}  // namespace qcowkit::wasm
