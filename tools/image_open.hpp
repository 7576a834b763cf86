// Opens the image a verb names, through the core's image opener: a raw file
// or a qcow2 image, detected from its first bytes unless the user said which
// (-f), locked as qemu-img locks images unless the user said -U.
//
// Backing files are opened only with --backing-chain (the core's "allow"
// policy: any plain file name the image gives). A vmdk descriptor's extent
// files are read from the descriptor's own folder by default
// (same_directory), and from anywhere with --backing-chain. Without it, the unallocated
// parts of an image with a backing file would read as zeroes, so verbs that
// read contents refuse such images (contents_needed).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "qcowkit/file_device.hpp"
#include "qcowkit/image_opener.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::cli {

struct ImageOpenOptions {
  std::optional<std::string> format;  // "raw" or "qcow2"; unset: detect
  bool read_only = true;
  bool follow_backing = false;        // open the backing chain (read-only)
  bool contents_needed = false;       // refuse a backing file we may not open
  bool lock = true;                   // false: -U / --force-share, as qemu-img
};

using OpenedImage = qcowkit::OpenedImage;

Result<OpenedImage> open_image(const std::string& path, const ImageOpenOptions& options);

// Where the backing file `name`, recorded in the image at `image_path`, lies
// (relative names are relative to the image's folder); an error for names we
// never follow (json: descriptions, protocol URLs).
Result<std::string> resolve_backing_name(const std::string& image_path, const std::string& name);

// "raw", "qcow2" or another format's name (formats.hpp: vpc, vdi, ...) from
// a -f/-O value, or an error naming the bad value.
Result<std::string> parse_format_name(const std::string& value);

}  // namespace qcowkit::cli
