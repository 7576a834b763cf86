// Making small qcow2 images in memory for tests, and patching their bytes to
// craft hostile ones.
#pragma once

#include <memory>

#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"
#include "util/endian.hpp"

namespace qcowkit::test {

inline std::shared_ptr<MemoryDevice> make_image(const Qcow2CreateOptions& options) {
  auto dev = std::make_shared<MemoryDevice>(0);
  auto image = Qcow2Image::create(dev, options);
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  REQUIRE((*image)->close().ok());
  return dev;
}

inline std::shared_ptr<MemoryDevice> make_image(uint64_t size, uint32_t cluster_size = 65536) {
  Qcow2CreateOptions o;
  o.size = size;
  o.cluster_size = cluster_size;
  return make_image(o);
}

inline void poke(BlockDevice& dev, uint64_t offset, const std::vector<uint8_t>& bytes) {
  REQUIRE(dev.write(offset, bytes).ok());
}
inline void poke32(BlockDevice& dev, uint64_t offset, uint32_t value) {
  std::vector<uint8_t> b(4);
  store_be32(b.data(), value);
  poke(dev, offset, b);
}
inline void poke64(BlockDevice& dev, uint64_t offset, uint64_t value) {
  std::vector<uint8_t> b(8);
  store_be64(b.data(), value);
  poke(dev, offset, b);
}
inline uint64_t peek64(BlockDevice& dev, uint64_t offset) {
  std::vector<uint8_t> b(8);
  REQUIRE(dev.read(offset, b).ok());
  return load_be64(b.data());
}

inline std::unique_ptr<Qcow2Image> open_ok(std::shared_ptr<BlockDevice> dev, bool read_only = false) {
  Qcow2OpenOptions o;
  o.read_only = read_only;
  auto image = Qcow2Image::open(std::move(dev), o);
  INFO((image.ok() ? std::string() : image.error().message));
  REQUIRE(image.ok());
  return std::move(*image);
}

// Opens and expects a refusal whose message contains `words`.
inline Error open_fails(std::shared_ptr<BlockDevice> dev, const std::string& words, bool read_only = true) {
  Qcow2OpenOptions o;
  o.read_only = read_only;
  auto image = Qcow2Image::open(std::move(dev), o);
  REQUIRE_FALSE(image.ok());
  INFO("message: " << image.error().message);
  CHECK(image.error().message.find(words) != std::string::npos);
  return image.error();
}

}  // namespace qcowkit::test
