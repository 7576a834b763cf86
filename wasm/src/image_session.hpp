// ImageSession: one opened image in the browser module, qcow2 or raw.
//
// Wraps the file device (a JsDevice) and, for qcow2, the Qcow2Image over it,
// and answers what the page and the JS API ask: the allocation map, a check
// and a bounded summary of the map for drawing.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/qcow2.hpp"

namespace qcowkit::wasm {

enum class ImageFormat { raw, qcow2 };

struct OpenRequest {
  std::optional<ImageFormat> format;     // nullopt: detect from the magic
  std::shared_ptr<BlockDevice> backing;  // used only when the caller passes one
  bool read_only = true;
};

// One run of the map, as `qemu-img map --output=json` prints it.
struct MapRun {
  uint64_t start = 0, length = 0;
  int depth = 0;
  bool present = false, zero = false, data = false, compressed = false;
  std::optional<uint64_t> offset;  // host offset, for uncompressed data
};

// How much of each bin of the guest address space is of each kind, in bytes.
struct MapBin {
  uint64_t data = 0, zero = 0, unallocated = 0, compressed = 0;
};

class ImageSession {
 public:
  static Result<std::unique_ptr<ImageSession>> open(std::shared_ptr<BlockDevice> file,
                                                    const OpenRequest& request);

  ImageFormat format() const { return qcow2_ ? ImageFormat::qcow2 : ImageFormat::raw; }
  Qcow2Image* qcow2() { return qcow2_.get(); }
  BlockDevice& guest() { return *guest_device(); }
  // What the guest sees, shareable: a backing device for another image.
  std::shared_ptr<BlockDevice> guest_device() {
    return qcow2_ ? std::static_pointer_cast<BlockDevice>(qcow2_) : file_;
  }
  BlockDevice& file() { return *file_; }
  uint64_t virtual_size() { return guest().info().size; }

  // Runs of [offset, offset + length), merged as qemu-img merges them.
  Result<std::vector<MapRun>> map(uint64_t offset, uint64_t length);
  // The whole image folded into `bins` equal bins (the last may be shorter).
  Result<std::vector<MapBin>> map_summary(uint32_t bins);
  // qemu-img check semantics; raw images have nothing to check (ENOTSUP).
  Result<CheckReport> check();

  Status close();

 private:
  ImageSession(std::shared_ptr<BlockDevice> file, std::shared_ptr<Qcow2Image> qcow2)
      : file_(std::move(file)), qcow2_(std::move(qcow2)) {}
  Status map_window(uint64_t offset, uint64_t length, const std::function<Status(const MapRun&)>& fn);

  std::shared_ptr<BlockDevice> file_;
  std::shared_ptr<Qcow2Image> qcow2_;
};

}  // namespace qcowkit::wasm
