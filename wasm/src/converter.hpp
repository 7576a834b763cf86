// Converter: copies an opened image into a new image of any format the core
// writes (raw, qcow2, and the formats.hpp table: vmdk, vpc, vdi, ...),
// made through the table's create(), on the core's copy engine, a bounded step at a time (CopyEngine::step), so the JS
// side can report progress and cancel between steps (a worker cannot
// receive a message while wasm code runs).
//
// Memory stays bounded whatever the image size: one chunk buffer (the
// engine runs one request at a time without threads), plus the qcow2
// writer's bounded metadata cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "image_session.hpp"
#include "qcowkit/copy_engine.hpp"
#include "qcowkit/device_sink.hpp"
#include "qcowkit/formats.hpp"
#include "qcowkit/qcow2_stream.hpp"

namespace qcowkit::wasm {

struct ConvertOptions {
  std::string to = "raw";         // "raw", "qcow2" or a formats.hpp name ("vmdk", "vpc", ...)
  FormatOptions format_options;   // a formats.hpp format's -o options (subformat=...)
  std::string file_name;          // the output's base name (vmdk records it); empty: a default
  // The new image's size is the source's rounded up to this (a power of
  // two; Azure wants fixed VHDs in whole MiB). 0 or 1: the source's size.
  uint64_t size_alignment = 0;
  bool compress = false;          // qcow2 only: deflate every cluster that shrinks
  uint32_t cluster_size = 65536;  // qcow2 only
  // Raw only: copy just [part_start, part_end) into a destination that is
  // already the image's size and reads as zeroes. Several converters (in
  // several workers) can so fill one file in parallel.
  bool part = false;
  uint64_t part_start = 0, part_end = 0;
  // qcow2 only: the image is written front to back by the core's stream
  // writer (qcow2_stream.hpp), every byte once, in file order, onto a
  // destination that only takes appends: a download handed to the user as
  // it is produced, with nothing staged in storage. The source is read
  // twice (a scan, then the data).
  bool stream = false;
};

struct ConvertProgress {
  uint64_t done = 0, total = 0;  // bytes of the guest address space walked
  bool finished = false;
};

class Converter {
 public:
  // `destination` is truncated to nothing first.
  static Result<std::unique_ptr<Converter>> start(ImageSession& source,
                                                  std::shared_ptr<BlockDevice> destination,
                                                  const ConvertOptions& options);

  // Converts at least one chunk and about `budget` bytes of guest space at
  // most; after the last one it flushes the destination and reports finished.
  Result<ConvertProgress> step(uint64_t budget);
  ConvertProgress progress() const { return progress_; }
  // Releases the destination (flushing it). The caller deletes a cancelled one.
  Status close();

 private:
  Converter(ImageSession& source, std::shared_ptr<BlockDevice> destination,
            std::unique_ptr<BlockDevice> image, Qcow2Image* qcow2, const ConvertOptions& options);
  Status begin();
  Status begin_stream();
  BlockDevice& target() { return image_ ? *image_ : *destination_; }

  ImageSession& source_;
  std::shared_ptr<BlockDevice> destination_;
  std::unique_ptr<BlockDevice> image_;  // the new image over destination_; null for raw
  Qcow2Image* qcow2_;                   // image_, when it is a qcow2 image
  ConvertOptions options_;
  ConvertProgress progress_;  // relative to the range converted
  std::unique_ptr<DeviceSink> sink_;
  std::unique_ptr<CopyEngine> engine_;
  // options.stream: the destination as a forward-only sink, and the writer.
  std::unique_ptr<ByteSink> append_;
  std::unique_ptr<Qcow2StreamWriter> stream_;
  bool closed_ = false;
};

}  // namespace qcowkit::wasm
