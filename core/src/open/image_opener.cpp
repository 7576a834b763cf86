// The image opener: format by content, backing chains under the caller's
// policy, a bounded depth, locks on every file.
#include "qcowkit/image_opener.hpp"

#include "qcowkit/formats.hpp"

namespace qcowkit {
namespace {

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name.rfind("json:", 0) != 0 && name.find("://") == std::string::npos;
}

Result<std::string> resolve_named(Host& host, const std::string& image_path, const std::string& name,
                                  BackingPolicy policy, const char* what);
Result<OpenedImage> open_layer(Host& host, const std::string& path, const ImageOpenOptions& options,
                               bool top, int depth);

// The opener's side of formats.hpp's ImageFiles: every name an image gives
// goes through resolve_named under the caller's policy and is opened by the
// Host, read-only; the files opened are kept for the image to close.
class NamedFiles final : public ImageFiles {
 public:
  NamedFiles(Host& host, const std::string& image_path, BackingPolicy policy, bool lock,
             std::vector<std::shared_ptr<BlockDevice>>& parts, std::shared_ptr<BlockDevice> backing)
      : host_(host), image_path_(image_path), policy_(policy), lock_(lock), parts_(parts),
        backing_(std::move(backing)) {}

  Result<std::shared_ptr<BlockDevice>> open_file(const std::string& name) override {
    QK_ASSIGN_OR_RETURN(std::string resolved,
                        resolve_named(host_, image_path_, name, policy_, "file"));
    // Never the image itself, whatever the policy: a descriptor naming
    // itself as its extent would read its own text as disk contents.
    auto self = host_.canonical(image_path_);
    auto other = host_.canonical(resolved);
    if (self.ok() && other.ok() && *self == *other)
      return make_error(ELOOP, image_path_ + ": file '" + name + "' refused: it is the image itself");
    // A file named by several extents is opened once (one descriptor, one
    // file descriptor per distinct file).
    const std::string key = other.ok() ? *other : resolved;
    for (const auto& [opened_name, device] : opened_)
      if (opened_name == key) return device;
    auto file = host_.open_file(resolved, HostOpenOptions{false, lock_});
    if (!file.ok()) return with_context(std::move(file).error(), image_path_ + ": file '" + name + "'");
    parts_.push_back(*file);
    opened_.emplace_back(key, *file);
    return file;
  }
  std::shared_ptr<BlockDevice> backing() override { return backing_; }

 private:
  Host& host_;
  const std::string& image_path_;
  const BackingPolicy policy_;
  const bool lock_;
  std::vector<std::shared_ptr<BlockDevice>>& parts_;
  std::shared_ptr<BlockDevice> backing_;
  std::vector<std::pair<std::string, std::shared_ptr<BlockDevice>>> opened_;  // by resolved name
};

// The backing layer `name` (written in the image at `path`) under the
// caller's policy: nullptr when the policy leaves it closed.
Result<std::shared_ptr<OpenedImage>> open_backing(Host& host, const std::string& path,
                                                  const std::string& name,
                                                  const std::optional<std::string>& format,
                                                  const ImageOpenOptions& options, int depth) {
  if (options.backing == BackingPolicy::refuse) {
    if (options.backing_required)
      return make_error(EPERM, path + ": the image has a backing file '" + name +
                                   "', which is not opened" +
                                   (options.refusal_hint.empty() ? "" : "; " + options.refusal_hint));
    return std::shared_ptr<OpenedImage>();
  }
  QK_ASSIGN_OR_RETURN(std::string below, resolve_backing_file(host, path, name, options.backing));
  ImageOpenOptions lower = options;
  lower.format = format;
  auto backing = open_layer(host, below, lower, false, depth + 1);
  if (!backing.ok()) return with_context(std::move(backing).error(), path + ": backing file");
  return std::make_shared<OpenedImage>(std::move(backing).value());
}

// A formats.hpp format; with open_with_files, its parent first and its
// named files through NamedFiles.
Status open_other(Host& host, OpenedImage& image, const ImageFormat& format,
                  const ImageOpenOptions& options, bool writable, int depth) {
  if (!format.open_with_files) {
    auto opened = format.open(image.file, !writable);
    if (!opened.ok()) return with_context(std::move(opened).error(), image.path);
    image.device = std::shared_ptr<BlockDevice>(std::move(opened).value());
    return {};
  }
  auto facts = format.probe(*image.file);
  if (!facts.ok()) return with_context(std::move(facts).error(), image.path);
  if (!facts->backing_file.empty()) {
    QK_ASSIGN_OR_RETURN(image.backing, open_backing(host, image.path, facts->backing_file,
                                                    std::nullopt, options, depth));
  }
  NamedFiles files(host, image.path, options.extent_files, options.lock, image.parts,
                   image.backing ? image.backing->device : nullptr);
  auto opened = format.open_with_files(image.file, !writable, files);
  if (!opened.ok()) return with_context(std::move(opened).error(), image.path);
  image.device = std::shared_ptr<BlockDevice>(std::move(opened).value());
  return {};
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
  // vpc, vdi, vmdk, ...: their parents and extent files come through the
  // same policies.
  if (const ImageFormat* other = find_image_format(image.format)) {
    Status st = open_other(host, image, *other, options, writable, depth);
    if (!st.ok()) {
      (void)image.close();
      return std::move(st).error();
    }
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
    const std::string& format = details->backing_format;
    if (options.backing != BackingPolicy::refuse && !format.empty() && format != "raw" &&
        format != "qcow2")
      return make_error(ENOTSUP, path + ": backing file '" + details->backing_file +
                                     "' has format '" + format + "'; only raw and qcow2 are supported");
    QK_ASSIGN_OR_RETURN(
        image.backing,
        open_backing(host, path, details->backing_file,
                     format.empty() ? std::nullopt : std::optional<std::string>(format), options, depth));
    if (image.backing) qo.backing = image.backing->device;
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

namespace {

Result<std::string> resolve_named(Host& host, const std::string& image_path, const std::string& name,
                                  BackingPolicy policy, const char* what) {
  auto refuse = [&](int code, const std::string& why) {
    return make_error(code, image_path + ": " + what + " '" + name + "' refused: " + why);
  };
  if (!is_plain_file_name(name)) return refuse(ENOTSUP, "it is not a plain file name");
  switch (policy) {
    case BackingPolicy::refuse:
      return refuse(EPERM, std::string(what) + "s named by images are not opened");
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

}  // namespace

Result<std::string> resolve_backing_file(Host& host, const std::string& image_path,
                                         const std::string& name, BackingPolicy policy) {
  return resolve_named(host, image_path, name, policy, "backing file");
}

Result<ImageFormatFacts> probe_image_file(Host& host, const std::string& path, BlockDevice& file,
                                          const ImageFormat& format, BackingPolicy extent_files,
                                          bool lock) {
  if (!format.probe_with_files) return format.probe(file);
  std::vector<std::shared_ptr<BlockDevice>> parts;
  NamedFiles files(host, path, extent_files, lock, parts, nullptr);
  auto facts = format.probe_with_files(file, files);
  for (auto& part : parts) (void)part->close();
  return facts;
}

Result<FormatCheckReport> check_named_image(Host& host, const std::string& path,
                                            const ImageOpenOptions& options) {
  QK_ASSIGN_OR_RETURN(auto file, host.open_file(path, HostOpenOptions{false, options.lock}));
  std::string format_name;
  if (options.format) {
    format_name = *options.format;
  } else {
    auto detected = detect_format(*file);
    if (!detected.ok()) {
      (void)file->close();
      return with_context(std::move(detected).error(), path);
    }
    format_name = *detected;
  }
  const ImageFormat* format = find_image_format(format_name);
  if (!format || !format->check) {
    (void)file->close();
    return make_error(ENOTSUP, "This image format does not support checks");
  }
  std::vector<std::shared_ptr<BlockDevice>> parts;
  NamedFiles files(host, path, options.extent_files, options.lock, parts, nullptr);
  auto report = format->check(*file, files);
  for (auto& part : parts) (void)part->close();
  (void)file->close();
  if (!report.ok()) return with_context(std::move(report).error(), path);
  return report;
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
  for (auto& part : parts) {
    Status st = part->close();
    if (result.ok()) result = st;
  }
  parts.clear();
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
