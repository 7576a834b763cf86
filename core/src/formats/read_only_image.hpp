// ReadOnlyImage: the base of the format devices that are read-only by
// nature (a vmdk descriptor's extents, a differencing VHD over its parent):
// every change is EROFS naming the image kind, and flush has nothing to do.
//
// Thread safety: adds no state; as thread-safe as the subclass.
#pragma once

#include <string>

#include "qcowkit/block_device.hpp"

namespace qcowkit::formats {

class ReadOnlyImage : public BlockDevice {
 public:
  // `what` ends the EROFS message: "<what> are read-only".
  explicit ReadOnlyImage(std::string what) : what_(std::move(what)) {}

  Status write(uint64_t, ConstByteSpan, WriteFlags) override { return refuse(); }
  Status discard(uint64_t, uint64_t) override { return refuse(); }
  Status write_zeroes(uint64_t, uint64_t, ZeroFlags) override { return refuse(); }
  Status resize(uint64_t) override { return refuse(); }
  Status flush() override { return {}; }

 private:
  Status refuse() const { return make_error(EROFS, what_ + " are read-only"); }
  const std::string what_;
};

}  // namespace qcowkit::formats
