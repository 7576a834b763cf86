#include "served_image.hpp"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>

#include "qcowkit/image_lock.hpp"

namespace qcowkit::plugin {

namespace {

// Deep enough for real chains, small enough that a loop cannot exhaust us.
constexpr int max_backing_depth = 16;

Result<std::string> real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) {
    const int err = errno;
    return make_error(err, path + ": " + std::strerror(err));
  }
  return std::string(buf);
}

Result<std::shared_ptr<FileDevice>> open_locked(const std::string& path, bool writable,
                                                bool locking) {
  FileOpenOptions fo;
  fo.read_only = !writable;
  QK_ASSIGN_OR_RETURN(std::shared_ptr<FileDevice> file, FileDevice::open(path, fo));
  if (locking) {
    QK_TRY(lock_image(file->fd(), path, writable ? ImageLockMode::writer : ImageLockMode::reader));
  }
  return file;
}

// Opens the backing file named in `details` (of the image at `path`) and, if
// it is qcow2, its own backing file, and so on. Appends each layer to `chain`
// and returns the top one.
Result<std::shared_ptr<BlockDevice>> open_backing(const std::string& path,
                                                  const Qcow2Details& details,
                                                  const PluginOptions& options, int depth,
                                                  std::vector<std::shared_ptr<BlockDevice>>& chain) {
  if (depth > max_backing_depth)
    return make_error(ELOOP, path + ": the backing chain is deeper than " +
                                 std::to_string(max_backing_depth) + " images");
  QK_ASSIGN_OR_RETURN(std::string backing_path, resolve_backing_path(path, details.backing_file));
  QK_ASSIGN_OR_RETURN(auto file, open_locked(backing_path, false, options.locking));

  const std::string& format = details.backing_format;
  const bool is_qcow2 = format == "qcow2" || (format.empty() && Qcow2Image::looks_like_qcow2(*file));
  if (!is_qcow2 && !format.empty() && format != "raw")
    return make_error(ENOTSUP, path + ": backing file " + backing_path + " has format '" + format +
                                   "'; only raw and qcow2 are supported");
  if (!is_qcow2) {
    chain.push_back(file);
    return std::shared_ptr<BlockDevice>(file);
  }

  QK_ASSIGN_OR_RETURN(Qcow2Details below, Qcow2Image::probe(*file));
  Qcow2OpenOptions oo;
  oo.read_only = true;
  oo.metadata_cache_bytes = options.metadata_cache;
  if (!below.backing_file.empty()) {
    QK_ASSIGN_OR_RETURN(oo.backing, open_backing(backing_path, below, options, depth + 1, chain));
  }
  auto image = Qcow2Image::open(file, oo);
  if (!image.ok()) return with_context(std::move(image).error(), "backing file " + backing_path);
  std::shared_ptr<BlockDevice> layer(std::move(image).value());
  chain.insert(chain.begin(), layer);
  return layer;
}

}  // namespace

Result<std::string> resolve_backing_path(const std::string& image_path, const std::string& name) {
  auto refuse = [&](const std::string& why) {
    return make_error(EPERM, image_path + ": backing file '" + name + "' refused: " + why);
  };
  if (name.empty()) return refuse("the name is empty");
  QK_ASSIGN_OR_RETURN(std::string image_real, real_path(image_path));
  const std::filesystem::path dir = std::filesystem::path(image_real).parent_path();
  const std::filesystem::path candidate =
      std::filesystem::path(name).is_absolute() ? std::filesystem::path(name) : dir / name;
  auto resolved = real_path(candidate.string());
  if (!resolved.ok()) return refuse("it cannot be found (" + resolved.error().message + ")");
  if (std::filesystem::path(*resolved).parent_path() != dir)
    return refuse("only files in the image's own directory " + dir.string() + " are opened");
  if (*resolved == image_real) return refuse("it is the image itself");
  return resolved;
}

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
  Qcow2CreateOptions co;
  co.size = *options.create_size;
  co.version = options.version;
  co.cluster_size = options.cluster_size;
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
  QK_ASSIGN_OR_RETURN(served->file_, open_locked(options.file, writable, options.locking));

  if (!Qcow2Image::looks_like_qcow2(*served->file_))
    return make_error(EINVAL, options.file + ": not a qcow2 image (no QFI\\xfb magic)");
  auto details = Qcow2Image::probe(*served->file_);
  if (!details.ok()) return with_context(std::move(details).error(), options.file);
  if (!details->data_file.empty())
    return make_error(ENOTSUP, options.file + ": uses an external data file '" +
                                   details->data_file + "', which this plugin does not open");

  Qcow2OpenOptions oo;
  oo.read_only = !writable;
  oo.metadata_cache_bytes = options.metadata_cache;
  oo.snapshot = options.snapshot;
  if (!details->backing_file.empty()) {
    if (!options.allow_backing)
      return make_error(EPERM, options.file + ": the image has a backing file '" +
                                   details->backing_file +
                                   "'; add backing=true to open it (only files in the "
                                   "image's own directory are allowed)");
    QK_ASSIGN_OR_RETURN(oo.backing,
                        open_backing(options.file, *details, options, 1, served->backing_chain_));
  }
  auto image = Qcow2Image::open(served->file_, oo);
  if (!image.ok()) return with_context(std::move(image).error(), options.file);
  served->image_ = std::move(image).value();
  return served;
}

Status ServedImage::close() {
  Status result;
  if (image_) {
    result = image_->close();
    image_.reset();
  }
  backing_chain_.clear();
  file_.reset();  // closing the descriptor drops the locks
  return result;
}

ServedImage::~ServedImage() { (void)close(); }

}  // namespace qcowkit::plugin
