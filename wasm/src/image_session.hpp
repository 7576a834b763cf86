// ImageSession: one opened image in the browser module, of any format the
// core reads (qcow2, raw, vpc, vdi, vmdk, qcow, ...).
//
// Opened by name through the core's image opener over a BrowserHost (the
// files the user gave): the format by content, a backing chain only through
// files the user gave too (BackingPolicy::same_directory over those names).
// The one other way in is an explicit backing layer the caller opened
// itself (OpenRequest::backing, the JS API's `backing` option), which only
// a qcow2 image can take. A session answers what the page and the JS API
// ask: info, the allocation map, a check and a bounded summary of the map
// for drawing.
//
// Ownership: a session opened by name owns its whole chain and closes it;
// one opened over an explicit backing layer closes only its own layer.
// Thread safety: none (the module runs on one thread).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/formats.hpp"
#include "qcowkit/image_map.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::wasm {

class BrowserHost;

struct OpenRequest {
  std::optional<std::string> format;     // "raw", "qcow2" or a formats.hpp name; nullopt: by content
  // The layer below, used only when the caller passes one: another opened
  // image, or a raw device (see raw_layer).
  std::shared_ptr<OpenedImage> backing;
  bool read_only = true;
  std::string snapshot;  // qcow2: an internal snapshot (ID or name) to open, read-only
};

// A plain device as a raw layer of a chain (a backing file the page was given
// as bytes).
std::shared_ptr<OpenedImage> raw_layer(std::shared_ptr<BlockDevice> device);

// How much of each bin of the guest address space is of each kind, in bytes.
struct MapBin {
  uint64_t data = 0, zero = 0, unallocated = 0, compressed = 0;
};

class ImageSession {
 public:
  // The image named `name` among `host`'s files, its backing chain (if
  // any) from the same files. `request.backing` must be unset.
  static Result<std::unique_ptr<ImageSession>> open_named(BrowserHost& host, const std::string& name,
                                                          const OpenRequest& request);
  // A qcow2 or raw image in `file` over the layer `request.backing` (or
  // none): the caller chose the backing layer itself.
  static Result<std::unique_ptr<ImageSession>> open(std::shared_ptr<BlockDevice> file,
                                                    const OpenRequest& request);

  const std::string& format() const { return image_->format; }
  Qcow2Image* qcow2() { return image_->qcow2.get(); }
  BlockDevice& guest() { return *image_->device; }
  // This image as a layer: the backing file of another image.
  std::shared_ptr<OpenedImage> layer() { return image_; }
  BlockDevice& file() { return *image_->file; }
  uint64_t virtual_size() { return guest().info().size; }

  // Runs of [offset, offset + length), merged as qemu-img merges them.
  Result<std::vector<MapRun>> map(uint64_t offset, uint64_t length);
  // The whole image folded into `bins` equal bins (the last may be shorter).
  Result<std::vector<MapBin>> map_summary(uint32_t bins);
  // What `qemu-img info` says of a format from the table (vpc, vdi, ...);
  // nullopt for qcow2 and raw.
  Result<std::optional<ImageFormatFacts>> facts();
  // qemu-img check semantics, for qcow2; other formats: ENOTSUP.
  Result<CheckReport> check();

  Status close();

 private:
  ImageSession(std::shared_ptr<OpenedImage> image, bool owns_chain)
      : image_(std::move(image)), owns_chain_(owns_chain) {}

  std::shared_ptr<OpenedImage> image_;
  // False: image_->backing belongs to the session that opened it.
  bool owns_chain_;
  // Probed at open_named, with the files the image names; unset: probed
  // from the image's own file when asked.
  std::optional<ImageFormatFacts> facts_;
};

}  // namespace qcowkit::wasm
