// ByteSink: where a stream of bytes goes (a pipe, a socket, an HTTP upload,
// a browser download being produced). Only ever appended to: the stream
// writers (qcow2_stream.hpp, vmdk.hpp's create_vmdk_stream) never seek and
// never write a byte twice.
//
// Thread safety: a writer calls write() from one thread at a time, in
// order; an implementation need not be thread-safe.
#pragma once

#include "qcowkit/block_device.hpp"

namespace qcowkit {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Appends all of `bytes`, or fails (the stream then stops with that
  // error; what was written stays written).
  virtual Status write(ConstByteSpan bytes) = 0;
};

// A ByteSink over a POSIX file descriptor (a pipe, a socket, a file):
// writes everything, retrying short writes and EINTR. Does not own `fd`.
class FdByteSink final : public ByteSink {
 public:
  explicit FdByteSink(int fd) : fd_(fd) {}
  Status write(ConstByteSpan bytes) override;

 private:
  int fd_;
};

// A ByteSink into memory (tests, small images); not thread-safe.
class MemoryByteSink final : public ByteSink {
 public:
  Status write(ConstByteSpan bytes) override {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return {};
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace qcowkit
