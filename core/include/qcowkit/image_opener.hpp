// Opening an image by name: the one place that decides an image's format
// (by content, unless the caller says), opens its backing chain under a
// policy the caller chooses, bounds the chain's depth, and takes locks.
// Every adapter (the plugin, the CLI) opens images through it.
//
//   ImageOpenOptions o;
//   o.backing = BackingPolicy::same_directory;
//   auto image = open_named_image(posix_host(), "disk.qcow2", o);
//   if (!image.ok()) return image.error();
//   Status st = image->device->read(0, buffer);
//   st = image->close();
//
// Backing files are named inside images, so a hostile image may name any
// file on the machine: nothing is followed unless the policy allows it, and
// names such as "json:{...}" or protocol URLs are never followed.
//
// Thread safety: open_named_image may be called from several threads; an
// OpenedImage is as thread-safe as its devices (Qcow2Image and FileDevice are).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/formats.hpp"
#include "qcowkit/host.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit {

enum class BackingPolicy {
  refuse,          // never open a backing file
  same_directory,  // only an existing file in the image's own folder (links resolved)
  allow,           // any plain file name the image gives
};

struct ImageOpenOptions {
  std::optional<std::string> format;  // "raw", "qcow2" or a formats.hpp name; unset: by content
  bool writable = false;              // the top image only; backing files are read-only
  bool lock = true;                   // QEMU-compatible locks on every file opened
  BackingPolicy backing = BackingPolicy::refuse;
  // With BackingPolicy::refuse: an image that has a backing file is an error
  // (EPERM) instead of being opened with its unallocated parts reading as
  // zeroes. `refusal_hint` is appended to that error ("add backing=true").
  bool backing_required = false;
  std::string refusal_hint;
  uint64_t metadata_cache_bytes = 32u << 20;  // for each qcow2 layer
  std::string snapshot;                        // qcow2: serve this snapshot (read-only)
  int max_depth = 16;                          // images in the chain, the top one included
  // Files an image names that are parts of it rather than layers under it
  // (a vmdk descriptor's extents), read-only, under the same name rules as
  // backing files. A descriptor and its extents in one folder is the
  // normal case, hence the default; the image itself is never opened again.
  BackingPolicy extent_files = BackingPolicy::same_directory;
};

struct OpenedImage {
  std::string path;
  std::string format;                     // "raw", "qcow2" or a formats.hpp name ("vpc", ...)
  std::shared_ptr<BlockDevice> file;      // the file the image lives in
  std::shared_ptr<BlockDevice> device;    // the guest's view: the file, or the image over it
  std::shared_ptr<Qcow2Image> qcow2;      // set for qcow2 images
  std::shared_ptr<OpenedImage> backing;   // the next layer down, when opened
  std::vector<std::shared_ptr<BlockDevice>> parts;  // extent files the image named

  // Flushes and closes the image, then its backing chain. Closing the files
  // drops their locks.
  Status close();
};

// "qcow2", a formats.hpp name ("vpc", "vdi", ...) or "raw", by the file's
// first bytes (never by its name).
Result<std::string> detect_format(BlockDevice& file);

Result<OpenedImage> open_named_image(Host& host, const std::string& path,
                                     const ImageOpenOptions& options);

// qemu-img check for a format of formats.hpp: opens the file read-only
// (locked unless options.lock is false; format by content unless
// options.format), and runs the format's check, named files reached under
// options.extent_files. ENOTSUP with qemu-img's words, "This image format
// does not support checks", for formats that have none (vpc, raw); qcow2's
// check is Qcow2Image::check, not this.
Result<FormatCheckReport> check_named_image(Host& host, const std::string& path,
                                            const ImageOpenOptions& options);

// What `qemu-img info` shows of an image of a formats.hpp format whose
// `file` is open already: the format's probe_with_files when it has one,
// named files reached under `extent_files` (read-only, locked when `lock`),
// else its probe.
Result<ImageFormatFacts> probe_image_file(Host& host, const std::string& path, BlockDevice& file,
                                          const ImageFormat& format, BackingPolicy extent_files,
                                          bool lock);

// Where the backing file `name`, written in the image at `image_path`, lies
// under `policy`, or why it may not be opened (EPERM for a refused name,
// ENOTSUP for a name that is not a plain file name).
Result<std::string> resolve_backing_file(Host& host, const std::string& image_path,
                                         const std::string& name, BackingPolicy policy);

}  // namespace qcowkit
