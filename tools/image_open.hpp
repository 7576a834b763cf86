// Opens the image a verb names: a raw file or a qcow2 image over a file,
// detected from its first bytes unless the user said which (-f).
//
// Backing files are never opened unless the user allows it (--backing-chain):
// an image names its backing file itself, and a hostile image could name any
// file on the machine. Without it, the unallocated parts of an image with a
// backing file read as zeroes, so verbs that read contents refuse such images.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::cli {

struct ImageOpenOptions {
  std::optional<std::string> format;  // "raw" or "qcow2"; unset: detect
  bool read_only = true;
  bool follow_backing = false;        // open the backing chain (read-only)
  bool contents_needed = false;       // refuse a backing file we may not open
};

struct OpenedImage {
  std::string path;
  std::string format;  // "raw" or "qcow2"
  std::shared_ptr<FileDevice> file;
  std::shared_ptr<BlockDevice> device;  // the guest view: the file or the qcow2 image
  std::shared_ptr<Qcow2Image> qcow2;    // set for qcow2 images
  std::shared_ptr<OpenedImage> backing; // set when the backing chain was followed
};

Result<OpenedImage> open_image(const std::string& path, const ImageOpenOptions& options);

// Where the backing file `name`, recorded in the image at `image_path`, lies
// (relative names are relative to the image's folder); an error for names we
// never follow (json: descriptions, protocol URLs).
Result<std::string> resolve_backing_name(const std::string& image_path, const std::string& name);

// "raw" or "qcow2" from a -f/-O value, or an error naming the bad value.
Result<std::string> parse_format_name(const std::string& value);

}  // namespace qcowkit::cli
