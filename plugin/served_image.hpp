// The one open image a plugin process serves, shared by all its connections.
//
// Opening does, in order: open the file, take QEMU-compatible locks, check the
// header, open the backing chain only if the user allowed it (and only files
// in the image's own directory), then open the qcow2 image over the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plugin_options.hpp"
#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::plugin {

class ServedImage {
 public:
  // Opens options.file read-only or read-write.
  static Result<std::unique_ptr<ServedImage>> open(const PluginOptions& options, bool writable);

  // Creates options.file as a new qcow2 image when it does not exist yet;
  // returns true when it did. Never touches an existing file.
  static Result<bool> create_if_missing(const PluginOptions& options);

  ~ServedImage();

  Qcow2Image& image() { return *image_; }
  bool writable() const { return writable_; }
  const std::string& path() const { return path_; }

  // Flushes and closes the image, its backing chain and the files (which
  // drops the locks). Safe to call twice.
  Status close();

 private:
  ServedImage() = default;

  std::string path_;
  bool writable_ = false;
  std::shared_ptr<FileDevice> file_;
  std::unique_ptr<Qcow2Image> image_;
  // Backing devices, nearest first; each is also held by the layer above.
  std::vector<std::shared_ptr<BlockDevice>> backing_chain_;
};

// Where the backing file `name` of the image at `image_path` lives, if it is
// allowed: an existing file in the image's own directory (after resolving
// symbolic links). Anything else (other directories, "../x", "json:{...}",
// protocols) fails with EPERM, naming the image and the backing file.
Result<std::string> resolve_backing_path(const std::string& image_path, const std::string& name);

}  // namespace qcowkit::plugin
