// What fuzz_vhd and fuzz_vdi share. The input is used twice:
//  * as a whole image file of the format: opened read-only, read all over,
//    its extents walked; then a writable copy gets a few writes, which must
//    read back, and must still read back after the image is reopened;
//  * as a program: a new image of a size the input picks, written at
//    offsets the input picks, closed, reopened, and compared with a model.
// Errors from hostile inputs are fine; a crash, a hang, unbounded memory or
// data that does not read back is a finding.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/formats.hpp"
#include "qcowkit/memory_device.hpp"

namespace qcowkit::fuzz {

using OpenImage = std::function<Result<std::unique_ptr<BlockDevice>>(std::shared_ptr<BlockDevice>, bool)>;
using CreateImage = std::function<Result<std::unique_ptr<BlockDevice>>(std::shared_ptr<BlockDevice>, uint64_t)>;

inline std::shared_ptr<MemoryDevice> memory_copy(const uint8_t* data, size_t size) {
  auto dev = std::make_shared<MemoryDevice>(size);
  if (size) require(dev->write(0, ConstByteSpan(data, size)).ok(), "MemoryDevice write");
  return dev;
}

inline void read_all_over(BlockDevice& image) {
  const uint64_t size = image.info().size;
  std::vector<uint8_t> buf(64u << 10);
  constexpr uint64_t kReads = 64;
  for (uint64_t i = 0; i < kReads && size > 0; ++i) {
    const uint64_t at = i == 0 ? 0 : (size / kReads) * i;
    (void)image.read(at, ByteSpan(buf.data(), std::min<uint64_t>(buf.size(), size - at)));
  }
  require(!image.read(size, ByteSpan(buf.data(), 1)).ok(), "read past the end succeeded");
  uint64_t pos = 0;
  for (int call = 0; call < 256 && pos < size; ++call) {
    auto extents = image.extents(pos, size - pos);
    if (!extents.ok()) return;
    require(!extents->empty(), "extents() returned nothing");
    for (const Extent& e : *extents) {
      require(e.offset == pos && e.length > 0, "extents are not contiguous and non-empty");
      pos += e.length;
    }
    require(pos <= size, "extents reach past the end");
  }
}

// ImageFiles (formats.hpp) for the formats that name other files (a vmdk
// descriptor's extents, a VHD's parent): every name opens the input itself
// (one shared copy, so a descriptor of 4096 extents costs no more memory),
// and the parent is 3 MiB of a pattern.
class InputFiles final : public ImageFiles {
 public:
  InputFiles(const uint8_t* data, size_t size) : input_(memory_copy(data, size)) {}
  Result<std::shared_ptr<BlockDevice>> open_file(const std::string&) override {
    return std::shared_ptr<BlockDevice>(input_);
  }
  std::shared_ptr<BlockDevice> backing() override {
    if (!parent_) {
      parent_ = std::make_shared<MemoryDevice>(3u << 20);
      std::vector<uint8_t> fill(1u << 20, 0x6b);
      require(parent_->write(1u << 20, fill).ok(), "MemoryDevice write");
    }
    return parent_;
  }

 private:
  std::shared_ptr<MemoryDevice> input_, parent_;
};

// Writes `pattern` at a few places of a writable image; each must read back.
inline void write_and_verify(BlockDevice& image, std::vector<std::pair<uint64_t, uint8_t>>& done) {
  const uint64_t size = image.info().size;
  std::vector<uint8_t> pattern(4096), back(4096);
  if (size < pattern.size()) return;
  const uint64_t spots[] = {0, (size / 2) & ~uint64_t{511}, size - pattern.size()};
  uint8_t fill = 1;
  for (uint64_t at : spots) {
    std::fill(pattern.begin(), pattern.end(), fill);
    if (image.write(at, pattern).ok()) {
      require(image.read(at, back).ok() && back == pattern, "a write did not read back");
      done.emplace_back(at, fill);
    }
    ++fill;
  }
}

inline void exercise_image_file(const uint8_t* data, size_t size, const OpenImage& open) {
  {
    auto image = open(memory_copy(data, size), true);
    if (!image.ok()) return;
    require((*image)->info().read_only, "a read-only open gave a writable image");
    read_all_over(**image);
    (void)(*image)->close();
  }
  auto file = memory_copy(data, size);
  auto image = open(file, false);
  if (!image.ok()) return;
  std::vector<std::pair<uint64_t, uint8_t>> done;
  write_and_verify(**image, done);
  if (!(*image)->close().ok() || done.empty()) return;
  // What was written survives a reopen: our own metadata updates are valid.
  auto again = open(file, true);
  require(again.ok(), "an image we wrote to no longer opens: " +
                          (again.ok() ? std::string() : again.error().message));
  std::vector<uint8_t> back(4096);
  // Later writes may overlap earlier ones (tiny images): check the last.
  const uint64_t at = done.back().first;
  const uint8_t fill = done.back().second;
  require((*again)->read(at, back).ok(), "reading back after reopen failed");
  require(std::all_of(back.begin(), back.end(), [&](uint8_t b) { return b == fill; }),
          "data written did not survive a reopen");
}

// `in_order`: each write starts at or after where the previous one ended
// (a streaming writer's contract).
inline void exercise_new_image(const uint8_t* data, size_t size, const CreateImage& create,
                               const OpenImage& open, bool in_order = false) {
  ByteReader in(data, size);
  const uint64_t virtual_size = in.below(4u << 20) + 1;  // small: many inputs a second
  auto file = std::make_shared<MemoryDevice>(0);
  auto image = create(file, virtual_size);
  if (!image.ok()) return;
  const uint64_t actual = (*image)->info().size;
  require(actual >= virtual_size, "a new image is smaller than asked");
  MemoryDevice model(actual);
  uint64_t cursor = 0;
  for (int op = 0; op < 16 && !in.empty() && cursor < actual; ++op) {
    const uint64_t at = in_order ? cursor + in.below(std::min<uint64_t>(actual - cursor, 1u << 20))
                                 : in.below(actual);
    const uint64_t length = std::min<uint64_t>(in.below(300000) + 1, actual - at);
    cursor = at + length;
    std::vector<uint8_t> bytes(length, in.u8());
    if (in.u8() & 1) {
      require((*image)->write(at, bytes).ok(), "a write to a new image failed");
      require(model.write(at, bytes).ok(), "model write");
    } else {
      require((*image)->write_zeroes(at, length).ok(), "write_zeroes on a new image failed");
      require(model.write_zeroes(at, length).ok(), "model zero");
    }
  }
  require((*image)->close().ok(), "closing a new image failed");
  auto again = open(file, true);
  require(again.ok(), "a new image does not reopen: " +
                          (again.ok() ? std::string() : again.error().message));
  require((*again)->info().size == actual, "a new image changed size on reopen");
  std::vector<uint8_t> a(1u << 20), b(1u << 20);
  for (uint64_t pos = 0; pos < actual; pos += a.size()) {
    const uint64_t n = std::min<uint64_t>(a.size(), actual - pos);
    require((*again)->read(pos, ByteSpan(a.data(), n)).ok(), "reading a new image failed");
    require(model.read(pos, ByteSpan(b.data(), n)).ok(), "model read");
    require(std::equal(a.begin(), a.begin() + n, b.begin()), "a new image reads back wrong");
  }
}

}  // namespace qcowkit::fuzz
