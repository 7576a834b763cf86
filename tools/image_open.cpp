#include "image_open.hpp"

#include <filesystem>

namespace qcowkit::cli {
namespace {

constexpr int kMaxBackingDepth = 16;

Result<OpenedImage> open_at_depth(const std::string& path, const ImageOpenOptions& options,
                                  int depth) {
  OpenedImage image;
  image.path = path;
  FileOpenOptions file_options;
  file_options.read_only = options.read_only;
  auto file = FileDevice::open(path, file_options);
  if (!file.ok()) return with_context(std::move(file).error(), "cannot open '" + path + "'");
  image.file = std::shared_ptr<FileDevice>(std::move(file).value());

  if (options.format)
    image.format = *options.format;
  else
    image.format = Qcow2Image::looks_like_qcow2(*image.file) ? "qcow2" : "raw";
  if (image.format != "raw" && image.format != "qcow2")
    return make_error(ENOTSUP, path + ": unsupported format '" + image.format + "'");

  if (image.format == "raw") {
    image.device = image.file;
    return image;
  }

  auto details = Qcow2Image::probe(*image.file);
  if (!details.ok()) return with_context(std::move(details).error(), path);
  Qcow2OpenOptions open_options;
  open_options.read_only = options.read_only;
  if (!details->backing_file.empty()) {
    if (options.follow_backing) {
      if (depth >= kMaxBackingDepth)
        return make_error(ELOOP, path + ": backing chain longer than " +
                                     std::to_string(kMaxBackingDepth) + " images");
      QK_ASSIGN_OR_RETURN(std::string backing_path,
                          resolve_backing_name(path, details->backing_file));
      ImageOpenOptions backing_options;
      backing_options.read_only = true;
      backing_options.follow_backing = true;
      if (!details->backing_format.empty()) backing_options.format = details->backing_format;
      auto backing = open_at_depth(backing_path, backing_options, depth + 1);
      if (!backing.ok()) return with_context(std::move(backing).error(), path + ": backing file");
      open_options.backing = backing->device;
      image.backing = std::make_shared<OpenedImage>(std::move(backing).value());
    } else if (options.contents_needed) {
      return make_error(ENOTSUP, path + " has backing file '" + details->backing_file +
                                     "'; pass --backing-chain to read through it");
    }
  }
  auto qcow2 = Qcow2Image::open(image.file, open_options);
  if (!qcow2.ok()) return with_context(std::move(qcow2).error(), path);
  image.qcow2 = std::shared_ptr<Qcow2Image>(std::move(qcow2).value());
  image.device = image.qcow2;
  return image;
}

}  // namespace

Result<std::string> resolve_backing_name(const std::string& image_path, const std::string& name) {
  if (name.rfind("json:", 0) == 0 || name.find("://") != std::string::npos)
    return make_error(ENOTSUP, "backing file '" + name + "' is not a plain file name");
  std::filesystem::path backing(name);
  if (backing.is_relative()) backing = std::filesystem::path(image_path).parent_path() / backing;
  return backing.string();
}

Result<std::string> parse_format_name(const std::string& value) {
  if (value == "raw" || value == "qcow2") return value;
  return make_error(EINVAL, "unknown image format '" + value + "' (use raw or qcow2)");
}

Result<OpenedImage> open_image(const std::string& path, const ImageOpenOptions& options) {
  return open_at_depth(path, options, 0);
}

}  // namespace qcowkit::cli
