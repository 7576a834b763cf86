#include "served_image.hpp"

#include <unistd.h>

#include "qcowkit/image_lock.hpp"

namespace qcowkit::plugin {
namespace {

// Deep enough for real chains, small enough that a loop cannot exhaust us.
constexpr int max_backing_depth = 16;

}  // namespace

Result<bool> ServedImage::create_if_missing(const PluginOptions& options) {
  if (!options.create_size) return false;
  FileOpenOptions fo;
  fo.create = true;
  fo.exclusive = true;
  auto file = FileDevice::open(options.file, fo);
  if (!file.ok()) {
    if (file.error().code == EEXIST) return false;  // an existing image is served as it is
    return std::move(file).error();
  }
  std::shared_ptr<FileDevice> shared = std::move(file).value();
  if (options.locking) QK_TRY(lock_image(shared->fd(), options.file, ImageLockMode::writer));
  Qcow2CreateOptions co = options.create;
  co.size = *options.create_size;
  auto image = Qcow2Image::create(shared, co);
  if (!image.ok()) {
    ::unlink(options.file.c_str());  // do not leave half an image behind
    return with_context(std::move(image).error(), "creating " + options.file);
  }
  QK_TRY((*image)->close());
  return true;
}

Result<std::unique_ptr<ServedImage>> ServedImage::open(const PluginOptions& options, bool writable) {
  std::unique_ptr<ServedImage> served(new ServedImage);
  served->path_ = options.file;
  served->writable_ = writable;
  ImageOpenOptions o;
  o.writable = writable;
  o.lock = options.locking;
  o.backing = options.allow_backing ? BackingPolicy::same_directory : BackingPolicy::refuse;
  o.backing_required = true;
  o.refusal_hint = "add backing=true to open it (only files in the image's own directory are allowed)";
  o.metadata_cache_bytes = options.serve.metadata_cache;
  o.snapshot = options.serve.snapshot;
  o.max_depth = 1 + max_backing_depth;
  QK_ASSIGN_OR_RETURN(served->opened_, open_named_image(posix_host(), options.file, o));
  if (!served->opened_.qcow2) {
    (void)served->opened_.close();
    return make_error(EINVAL, options.file + ": not a qcow2 image (no QFI\\xfb magic)");
  }
  served->exported_ = std::make_unique<serve::ExportedImage>(served->opened_.qcow2,
                                                             options.serve.trim, writable);
  return served;
}

// exported_ stays: a request racing the close then fails with EBADF from
// the closed image instead of touching a freed object.
Status ServedImage::close() { return opened_.close(); }

ServedImage::~ServedImage() { (void)close(); }

}  // namespace qcowkit::plugin
