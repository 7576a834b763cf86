// ImageOverNext: a qcow2 image whose file is whatever the plugin below the
// qcow2 filter serves. Stacks the core's pieces, holds no format logic:
//
//   ExportedImage (NBD semantics, serve/)
//     Qcow2Image (the engine)          backing: an image opened by name
//       FixedCapacityDevice (the file grows only into the plugin's size)
//         AlignedDevice, when the plugin takes only whole sectors
//           NextDevice (the plugin, or the filters below)
//
// Opening decides what the plugin's bytes are: an existing qcow2 image is
// served as it is; with qcow2-create=, an all-zero writable plugin gets a
// new image; anything else is refused without a byte written. An image
// that has a backing file is refused unless qcow2-backing= names one; one
// marked corrupt is served read-only, as the plugin does, and so is a dirty
// one when the plugin has no room for the repair opening it writable needs.
//
// Ownership: owns every layer above the nbdkit_next, which must be prepared
// and outlive it. Thread safety: exported() from any number of threads;
// open and close from one.
#pragma once

#include <memory>
#include <string>

#include "next_device.hpp"
#include "qcow2_filter_options.hpp"
#include "qcowkit/image_opener.hpp"
#include "serve/exported_image.hpp"
#include "serve/fixed_capacity_device.hpp"

namespace qcowkit::filter {

class ImageOverNext {
 public:
  // `want_write`: open for writing if the plugin below allows it (and the
  // image is not corrupt, and no snapshot is served). `serialize`: the
  // server's thread model is not fully parallel (see NextDevice).
  static Result<std::unique_ptr<ImageOverNext>> open(nbdkit_next_ops* next,
                                                     const Qcow2FilterOptions& options,
                                                     bool want_write, bool serialize);
  ~ImageOverNext();

  serve::ExportedImage& exported() { return *exported_; }
  bool writable() const { return writable_; }
  const NextCaps& plugin_caps() const { return device_->caps(); }
  // True when the image was made by this open (qcow2-create=).
  bool created() const { return created_; }
  // Why an image asked for read-write was opened read-only (empty if not).
  const std::string& read_only_reason() const { return read_only_reason_; }

  // Flushes and closes the image, then the backing image. Safe to call twice.
  Status close();

 private:
  ImageOverNext() = default;
  Status open_image(const Qcow2FilterOptions& options, bool writable);
  Status create_image(const Qcow2FilterOptions& options);
  // Makes the container's file end where the image's last cluster does.
  Status find_image_end(const Qcow2OpenOptions& writable_options);

  std::shared_ptr<NextDevice> device_;
  std::shared_ptr<BlockDevice> bytes_;  // device_, byte-granular (AlignedDevice::over)
  std::shared_ptr<serve::FixedCapacityDevice> container_;
  std::shared_ptr<OpenedImage> backing_;
  std::shared_ptr<Qcow2Image> image_;
  std::unique_ptr<serve::ExportedImage> exported_;
  bool writable_ = false;
  bool created_ = false;
  std::string read_only_reason_;
};

}  // namespace qcowkit::filter
