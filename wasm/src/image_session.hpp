// ImageSession: one opened image in the browser module, qcow2 or raw.
//
// One layer of a chain (core's OpenedImage: the file device, a JsDevice, and
// for qcow2 the Qcow2Image over it, the format decided by the core), and answers what the page and the JS API ask: the allocation map, a check
// and a bounded summary of the map for drawing.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/image_map.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit::wasm {

struct OpenRequest {
  std::optional<std::string> format;     // "raw" or "qcow2"; nullopt: detected by content
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
  // qemu-img check semantics; raw images have nothing to check (ENOTSUP).
  Result<CheckReport> check();

  Status close();

 private:
  explicit ImageSession(std::shared_ptr<OpenedImage> image) : image_(std::move(image)) {}

  // This layer only: its backing layer belongs to the session that opened it.
  std::shared_ptr<OpenedImage> image_;
};

}  // namespace qcowkit::wasm
