#include "image_session.hpp"

#include <algorithm>

#include "browser_host.hpp"
#include "js_codecs.hpp"
#include "qcowkit/image_opener.hpp"

namespace qcowkit::wasm {
namespace {

// Bound on cached qcow2 metadata: the browser tab should stay small.
constexpr uint64_t kMetadataCacheBytes = 8u << 20;

}  // namespace

std::shared_ptr<OpenedImage> raw_layer(std::shared_ptr<BlockDevice> device) {
  auto layer = std::make_shared<OpenedImage>();
  layer->format = "raw";
  layer->file = device;
  layer->device = std::move(device);
  return layer;
}

Result<std::unique_ptr<ImageSession>> ImageSession::open_named(BrowserHost& host, const std::string& name,
                                                               const OpenRequest& request) {
  if (request.backing) return make_error(EINVAL, "open: an explicit backing layer is opened with open()");
  ImageOpenOptions options;
  options.format = request.format;
  options.writable = !request.read_only;
  options.lock = false;
  options.backing = BackingPolicy::same_directory;
  options.metadata_cache_bytes = kMetadataCacheBytes;
  options.snapshot = request.snapshot;
  if (!request.snapshot.empty() && request.format.value_or("qcow2") != "qcow2") {
    // Said before opening, so the message does not depend on the file.
    return make_error(EINVAL, "a " + *request.format + " image has no internal snapshots");
  }
  QK_ASSIGN_OR_RETURN(OpenedImage opened, open_named_image(host, name, options));
  auto image = std::make_shared<OpenedImage>(std::move(opened));
  if (!request.snapshot.empty() && !image->qcow2) {
    const std::string format = image->format;
    (void)image->close();
    return make_error(EINVAL, "a " + format + " image has no internal snapshots");
  }
  auto session = std::unique_ptr<ImageSession>(new ImageSession(std::move(image), true));
  // Facts that live in other files (a vmdk descriptor's extents) need the
  // host, which lives only as long as this call: probed now, as info does.
  if (const ImageFormat* format = find_image_format(session->image_->format)) {
    auto facts = probe_image_file(host, session->image_->path, *session->image_->file, *format,
                                  options.extent_files, options.lock);
    if (!facts.ok()) {
      (void)session->close();
      return std::move(facts).error();
    }
    session->facts_ = std::move(facts).value();
  }
  return session;
}

Result<std::unique_ptr<ImageSession>> ImageSession::open(std::shared_ptr<BlockDevice> file,
                                                         const OpenRequest& request) {
  auto image = std::make_shared<OpenedImage>();
  if (request.format) {
    image->format = *request.format;
  } else {
    QK_ASSIGN_OR_RETURN(image->format, detect_format(*file));
  }
  image->file = file;
  image->device = file;
  if (image->format == "qcow2") {
    Qcow2OpenOptions options;
    options.read_only = request.read_only || !request.snapshot.empty();
    options.snapshot = request.snapshot;
    if (request.backing) options.backing = request.backing->device;
    options.metadata_cache_bytes = kMetadataCacheBytes;
    options.codecs = &js_codecs();
    QK_ASSIGN_OR_RETURN(image->qcow2, Qcow2Image::open(file, options));
    image->device = image->qcow2;
    image->backing = request.backing;
  } else if (!request.snapshot.empty()) {
    return make_error(EINVAL, "a " + image->format + " image has no internal snapshots");
  } else if (image->format != "raw") {
    return make_error(ENOTSUP, "only a qcow2 image takes an explicit backing layer, not a " +
                                   image->format + " image");
  }
  return std::unique_ptr<ImageSession>(new ImageSession(std::move(image), false));
}

Result<std::vector<MapRun>> ImageSession::map(uint64_t offset, uint64_t length) {
  return map_image(*image_, offset, length);
}

Result<std::vector<MapBin>> ImageSession::map_summary(uint32_t bins) {
  if (bins == 0 || bins > 1u << 20)
    return make_error(EINVAL, "map summary: bin count " + std::to_string(bins) + " is not in 1..2^20");
  const uint64_t size = virtual_size();
  std::vector<MapBin> out(bins);
  if (size == 0) return out;
  const uint64_t bin_size = (size + bins - 1) / bins;
  auto add = [&](const MapRun& run) -> Status {
    for (uint64_t pos = run.start, end = run.start + run.length; pos < end;) {
      const uint64_t bin = pos / bin_size;
      const uint64_t n = std::min(end, (bin + 1) * bin_size) - pos;
      MapBin& b = out[std::min<uint64_t>(bin, bins - 1)];
      if (run.compressed)
        b.compressed += n;
      else if (run.data)
        b.data += n;
      else if (run.present || run.depth > 0)
        b.zero += n;
      else
        b.unallocated += n;
      pos += n;
    }
    return {};
  };
  QK_TRY(for_each_map_run(*image_, 0, size, add));
  return out;
}

Result<std::optional<ImageFormatFacts>> ImageSession::facts() {
  if (facts_) return facts_;
  const qcowkit::ImageFormat* format = find_image_format(image_->format);
  if (!format) return std::optional<ImageFormatFacts>();
  QK_ASSIGN_OR_RETURN(ImageFormatFacts facts, format->probe(*image_->file));
  return std::optional<ImageFormatFacts>(std::move(facts));
}

Result<CheckReport> ImageSession::check() {
  if (!image_->qcow2)
    return make_error(ENOTSUP, "check: a " + image_->format + " image has no metadata this tool checks" +
                                   (image_->format == "raw" ? "" : " (only qcow2 is checked)"));
  return image_->qcow2->check(RepairMode::none);
}

Status ImageSession::close() {
  if (owns_chain_) return image_->close();
  Status first;
  if (image_->qcow2) {
    Status st = image_->qcow2->close();
    if (!st.ok()) first = st;
  }
  Status st = image_->file->close();
  if (first.ok() && !st.ok()) first = st;
  return first;
}

}  // namespace qcowkit::wasm
