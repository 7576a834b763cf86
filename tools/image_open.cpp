#include "image_open.hpp"

#include "qcowkit/formats.hpp"

namespace qcowkit::cli {

Result<std::string> resolve_backing_name(const std::string& image_path, const std::string& name) {
  return resolve_backing_file(posix_host(), image_path, name, BackingPolicy::allow);
}

Result<std::string> parse_format_name(const std::string& value) {
  if (value == "raw" || value == "qcow2" || find_image_format(value)) return value;
  std::string names = "raw, qcow2";
  for (const auto& name : image_format_names()) names += ", " + name;
  return make_error(EINVAL, "unknown image format '" + value + "' (use " + names + ")");
}

Result<OpenedImage> open_image(const std::string& path, const ImageOpenOptions& options) {
  qcowkit::ImageOpenOptions o;
  o.format = options.format;
  o.writable = !options.read_only;
  o.lock = options.lock;
  o.backing = options.follow_backing ? BackingPolicy::allow : BackingPolicy::refuse;
  // A vmdk descriptor's extents are parts of the image, not layers: next
  // to the descriptor they are read by default (as qemu-img reads them);
  // anywhere else only with --backing-chain, as backing files.
  o.extent_files = options.follow_backing ? BackingPolicy::allow : BackingPolicy::same_directory;
  o.backing_required = options.contents_needed;
  o.refusal_hint = "pass --backing-chain to read through it";
  return open_named_image(posix_host(), path, o);
}

}  // namespace qcowkit::cli
