// fuzz_vhdx: VHDX images, hostile and new, dynamic and fixed, with and
// without a log to replay; see fuzz_format_support.hpp for what is
// exercised.
//
// A VHDX file is at least a few MiB (1 MiB header section, then 1 MiB
// aligned log, BAT and metadata regions) and mostly zeroes, so the input
// describes a sparse file rather than holding it: u32 file size in KiB
// (at most 16 MiB), then records of u32 offset, u16 length and that many
// bytes, laid over zeroes. fuzz/vhdx-seed.py turns an image qemu-img made
// into such a description (the committed seeds).
#include "fuzz_format_support.hpp"
#include "qcowkit/vhdx.hpp"

using namespace qcowkit;

namespace {

constexpr uint64_t kMaxFile = 16u << 20;

std::vector<uint8_t> assemble(const uint8_t* data, size_t size) {
  fuzz::ByteReader in(data, size);
  std::vector<uint8_t> file(std::min<uint64_t>(uint64_t{in.u32()} * 1024, kMaxFile));
  while (!in.empty() && !file.empty()) {
    const uint64_t at = in.u32() % file.size();
    const uint16_t length = in.u16();
    auto bytes = in.bytes(std::min<uint64_t>(length, file.size() - at));
    std::copy(bytes.begin(), bytes.end(), file.begin() + at);
  }
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  auto open = [](std::shared_ptr<BlockDevice> file, bool read_only) {
    return open_vhdx(std::move(file), read_only);
  };
  const std::vector<uint8_t> file = assemble(data, size);
  fuzz::exercise_image_file(file.data(), file.size(), open);
  const bool fixed = size > 0 && (data[0] & 0x80);
  const uint32_t block_size = (size > 1 && (data[1] & 0x80)) ? 2u << 20 : 1u << 20;
  fuzz::exercise_new_image(
      data, size,
      [fixed, block_size](std::shared_ptr<BlockDevice> f, uint64_t bytes) {
        VhdxCreateOptions o;
        o.size = bytes;
        o.fixed = fixed;
        o.block_size = block_size;
        return create_vhdx(std::move(f), o);
      },
      open);
  return 0;
}
