#include "image_over_next.hpp"

#include "qcowkit/aligned_device.hpp"
#include "serve/fixed_capacity_device.hpp"

namespace qcowkit::filter {
namespace {

// Deep enough for real chains below the named backing file, small enough
// that a loop cannot exhaust us.
constexpr int max_backing_depth = 16;

Result<std::shared_ptr<OpenedImage>> open_backing(const std::string& path,
                                                  const Qcow2FilterOptions& options) {
  ImageOpenOptions o;
  o.writable = false;
  o.lock = true;
  // The user named this file; its own backing files are followed only in
  // its directory, as the plugin's backing=true does.
  o.backing = BackingPolicy::same_directory;
  o.metadata_cache_bytes = options.serve.metadata_cache;
  o.max_depth = max_backing_depth;
  auto opened = open_named_image(posix_host(), path, o);
  if (!opened.ok()) return with_context(std::move(opened).error(), "qcow2-backing=" + path);
  return std::make_shared<OpenedImage>(std::move(opened).value());
}

}  // namespace

Result<std::unique_ptr<ImageOverNext>> ImageOverNext::open(nbdkit_next_ops* next,
                                                           const Qcow2FilterOptions& options,
                                                           bool want_write, bool serialize) {
  std::unique_ptr<ImageOverNext> self(new ImageOverNext);
  QK_ASSIGN_OR_RETURN(self->device_, NextDevice::open(next, serialize));
  // The engine reads and writes metadata where it lies, byte by byte; a
  // plugin that takes only whole sectors gets them read-modify-written.
  self->bytes_ = AlignedDevice::over(self->device_);
  QK_ASSIGN_OR_RETURN(self->container_, serve::FixedCapacityDevice::open(self->bytes_));
  const bool writable =
      want_write && self->device_->caps().can_write && options.serve.snapshot.empty();

  if (writable && options.create_size && !Qcow2Image::looks_like_qcow2(*self->container_)) {
    QK_TRY(self->create_image(options));
  } else {
    Status st = self->open_image(options, writable);
    // An image marked corrupt opens read-only only: serve it that way, as
    // the plugin does (writes are refused, reads still work). So is a dirty
    // image whose repair (done when opened for writing) needs more room
    // than the plugin has: the plugin would grow its file instead.
    if (!st.ok() && writable && (st.error().code == EROFS || st.error().code == ENOSPC)) {
      self->read_only_reason_ = st.error().message;
      st = self->open_image(options, false);
    }
    QK_TRY(st);
  }
  self->exported_ = std::make_unique<serve::ExportedImage>(self->image_, options.serve.trim,
                                                           self->writable_);
  return self;
}

Status ImageOverNext::open_image(const Qcow2FilterOptions& options, bool writable) {
  if (!Qcow2Image::looks_like_qcow2(*container_))
    return make_error(EINVAL, "the plugin's data is not a qcow2 image (no QFI\\xfb magic)" +
                                  std::string(options.create_size ? "; qcow2-create= only writes "
                                                                    "to an empty, writable plugin"
                                                                  : ""));
  QK_ASSIGN_OR_RETURN(Qcow2Details details, Qcow2Image::probe(*container_));
  Qcow2OpenOptions o = options.serve.open_options(writable);
  if (!details.backing_file.empty()) {
    if (options.backing.empty())
      return make_error(EPERM, "the image has a backing file '" + details.backing_file +
                                   "', which is not opened; give qcow2-backing=PATH to use one");
    if (!backing_) {
      QK_ASSIGN_OR_RETURN(backing_, open_backing(options.backing, options));
    }
    o.backing = backing_->device;
  } else if (!options.backing.empty()) {
    return make_error(EINVAL, "qcow2-backing=" + options.backing +
                                  ": the image has no backing file");
  }
  // Read-only, the file is the whole plugin. Writable, it must end where
  // the image does, since the engine places new tables at the end of its
  // file: the engine says where, from a read-only look first.
  container_->set_file_end(container_->capacity());
  if (writable) QK_TRY(find_image_end(o));
  auto image = Qcow2Image::open(container_, o);
  if (!image.ok()) return std::move(image).error();
  image_ = std::shared_ptr<Qcow2Image>(std::move(image).value());
  writable_ = writable;
  return {};
}

Status ImageOverNext::find_image_end(const Qcow2OpenOptions& writable_options) {
  Qcow2OpenOptions o = writable_options;
  o.read_only = true;
  auto image = Qcow2Image::open(container_, o);
  if (!image.ok()) return std::move(image).error();
  auto report = (*image)->check(RepairMode::none);
  QK_TRY((*image)->close());
  // An image the check cannot walk is left with no room; opening it for
  // writing says what is wrong, as it would over the plugin.
  if (report.ok()) container_->set_file_end(report->image_end_offset);
  return {};
}

Status ImageOverNext::create_image(const Qcow2FilterOptions& options) {
  if (bytes_->info().size == 0)
    return make_error(ENOSPC, "qcow2-create=: the plugin below holds 0 bytes, and an NBD export "
                              "cannot grow; give it room first (e.g. truncate -s 10G FILE)");
  QK_ASSIGN_OR_RETURN(const bool empty, serve::device_is_all_zero(*bytes_));
  if (!empty)
    return make_error(EEXIST, "qcow2-create=: the plugin's data is neither a qcow2 image nor all "
                              "zeroes; refusing to overwrite it");
  if (!options.backing.empty())
    return make_error(EINVAL, "qcow2-create= makes an image without a backing file; "
                              "qcow2-backing= does not go with it");
  container_->set_file_end(0);
  Qcow2CreateOptions co;
  co.size = *options.create_size;
  auto image = Qcow2Image::create(container_, co, options.serve.open_options(true));
  if (!image.ok()) return with_context(std::move(image).error(), "qcow2-create=");
  image_ = std::shared_ptr<Qcow2Image>(std::move(image).value());
  writable_ = true;
  created_ = true;
  return {};
}

Status ImageOverNext::close() {
  Status result;
  if (image_) result = image_->close();
  if (backing_) {
    Status st = backing_->close();
    if (result.ok()) result = st;
    backing_.reset();
  }
  // The device's close flushes the plugin once more; it stays usable by
  // whoever owns the nbdkit_next, which this class never closes.
  if (device_) {
    Status st = device_->close();
    if (result.ok()) result = st;
  }
  return result;
}

ImageOverNext::~ImageOverNext() { (void)close(); }

}  // namespace qcowkit::filter
