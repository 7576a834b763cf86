// The one open image a plugin process serves, shared by all its connections.
// Ownership: owns the opened image and its backing chain.
// Thread safety: open/close from one thread; exported() from any number.
//
// Opened through the core's image opener: QEMU-compatible locks, the backing
// chain only if the user allowed it (and then only files in the image's own
// directory), then the qcow2 image over the file.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plugin_options.hpp"
#include "qcowkit/file_device.hpp"
#include "qcowkit/image_opener.hpp"
#include "qcowkit/qcow2.hpp"
#include "serve/exported_image.hpp"

namespace qcowkit::plugin {

class ServedImage {
 public:
  // Opens options.file read-only or read-write.
  static Result<std::unique_ptr<ServedImage>> open(const PluginOptions& options, bool writable);

  // Creates options.file as a new qcow2 image when it does not exist yet;
  // returns true when it did. Never touches an existing file.
  static Result<bool> create_if_missing(const PluginOptions& options);

  ~ServedImage();

  Qcow2Image& image() { return *opened_.qcow2; }
  // NBD request semantics over the image (the serving layer's).
  serve::ExportedImage& exported() { return *exported_; }
  bool writable() const { return writable_; }
  const std::string& path() const { return path_; }

  // Flushes and closes the image, its backing chain and the files (which
  // drops the locks). Safe to call twice.
  Status close();

 private:
  ServedImage() = default;

  std::string path_;
  bool writable_ = false;
  OpenedImage opened_;
  std::unique_ptr<serve::ExportedImage> exported_;
};

}  // namespace qcowkit::plugin
