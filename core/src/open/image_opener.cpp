// The image opener: format by content, backing chains under the caller's
// policy, a bounded depth, locks on every file.
#include "qcowkit/image_opener.hpp"

#include "qcowkit/formats.hpp"

namespace qcowkit {
namespace {

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name.rfind("json:", 0) != 0 && name.find("://") == std::string::npos;
}

Result<OpenedImage> open_layer(Host& host, const std::string& path, const ImageOpenOptions& options,
                               bool top, int depth) {
  if (depth > options.max_depth)
    return make_error(ELOOP, path + ": the backing chain is deeper than " +
                                 std::to_string(options.max_depth) + " images");
  OpenedImage image;
  image.path = path;
  const bool writable = top && options.writable;
  QK_ASSIGN_OR_RETURN(image.file, host.open_file(path, HostOpenOptions{writable, options.lock}));
  if (options.format) {
    image.format = *options.format;
  } else {
    QK_ASSIGN_OR_RETURN(image.format, detect_format(*image.file));
  }
  if (image.format == "raw") {
    image.device = image.file;
    return image;
  }
  // vpc, vdi, ...: no backing files (their differencing kinds are refused).
  if (const ImageFormat* other = find_image_format(image.format)) {
    auto opened = other->open(image.file, !writable);
    if (!opened.ok()) return with_context(std::move(opened).error(), path);
    image.device = std::shared_ptr<BlockDevice>(std::move(opened).value());
    return image;
  }
  if (image.format != "qcow2")
    return make_error(ENOTSUP, path + ": unsupported format '" + image.format + "'");

  auto details = Qcow2Image::probe(*image.file);
  if (!details.ok()) return with_context(std::move(details).error(), path);
  Qcow2OpenOptions qo;
  qo.read_only = !writable;
  qo.metadata_cache_bytes = options.metadata_cache_bytes;
  if (top) qo.snapshot = options.snapshot;
  if (!details->backing_file.empty()) {
    if (options.backing == BackingPolicy::refuse) {
      if (options.backing_required)
        return make_error(EPERM, path + ": the image has a backing file '" + details->backing_file +
                                     "', which is not opened" +
                                     (options.refusal_hint.empty() ? "" : "; " + options.refusal_hint));
    } else {
      QK_ASSIGN_OR_RETURN(std::string below,
                          resolve_backing_file(host, path, details->backing_file, options.backing));
      const std::string& format = details->backing_format;
      if (!format.empty() && format != "raw" && format != "qcow2")
        return make_error(ENOTSUP, path + ": backing file " + below + " has format '" + format +
                                       "'; only raw and qcow2 are supported");
      ImageOpenOptions lower = options;
      lower.format = format.empty() ? std::nullopt : std::optional<std::string>(format);
      auto backing = open_layer(host, below, lower, false, depth + 1);
      if (!backing.ok()) return with_context(std::move(backing).error(), path + ": backing file");
      image.backing = std::make_shared<OpenedImage>(std::move(backing).value());
      qo.backing = image.backing->device;
    }
  }
  auto qcow2 = Qcow2Image::open(image.file, qo);
  if (!qcow2.ok()) return with_context(std::move(qcow2).error(), path);
  image.qcow2 = std::shared_ptr<Qcow2Image>(std::move(qcow2).value());
  image.device = image.qcow2;
  return image;
}

}  // namespace

Result<std::string> detect_format(BlockDevice& file) {
  if (Qcow2Image::looks_like_qcow2(file)) {
    // qcow version 1 shares the magic; its version tells them apart.
    const ImageFormat* qcow = find_image_format("qcow");
    return std::string(qcow && qcow->sniff(file) ? "qcow" : "qcow2");
  }
  if (const ImageFormat* other = sniff_image_format(file)) return std::string(other->name);
  return std::string("raw");
}

Result<std::string> resolve_backing_file(Host& host, const std::string& image_path,
                                         const std::string& name, BackingPolicy policy) {
  auto refuse = [&](int code, const std::string& why) {
    return make_error(code, image_path + ": backing file '" + name + "' refused: " + why);
  };
  if (!is_plain_file_name(name)) return refuse(ENOTSUP, "it is not a plain file name");
  switch (policy) {
    case BackingPolicy::refuse:
      return refuse(EPERM, "backing files are not opened");
    case BackingPolicy::allow:
      return host.resolve(image_path, name);
    case BackingPolicy::same_directory: {
      QK_ASSIGN_OR_RETURN(std::string image_real, host.canonical(image_path));
      const std::string dir = host.directory_of(image_real);
      auto resolved = host.canonical(host.resolve(image_real, name));
      if (!resolved.ok()) return refuse(EPERM, "it cannot be found (" + resolved.error().message + ")");
      if (host.directory_of(*resolved) != dir)
        return refuse(EPERM, "only files in the image's own directory " + dir + " are opened");
      if (*resolved == image_real) return refuse(EPERM, "it is the image itself");
      return resolved;
    }
  }
  return refuse(EINVAL, "unknown policy");
}

Result<OpenedImage> open_named_image(Host& host, const std::string& path,
                                     const ImageOpenOptions& options) {
  return open_layer(host, path, options, true, 1);
}

Status OpenedImage::close() {
  Status result;
  if (device && device != file) result = device->close();
  device.reset();
  qcow2.reset();
  if (backing) {
    Status st = backing->close();
    if (result.ok()) result = st;
    backing.reset();
  }
  if (file) {
    Status st = file->close();
    if (result.ok()) result = st;
    file.reset();
  }
  return result;
}

}  // namespace qcowkit
