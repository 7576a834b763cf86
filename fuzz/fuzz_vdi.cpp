// fuzz_vdi: VDI images, hostile and new, dynamic and static; see
// fuzz_format_support.hpp for what is exercised.
#include "fuzz_format_support.hpp"
#include "qcowkit/vdi.hpp"

using namespace qcowkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;
  auto open = [](std::shared_ptr<BlockDevice> file, bool read_only) {
    return open_vdi(std::move(file), read_only);
  };
  fuzz::exercise_image_file(data, size, open);
  const bool static_image = size > 0 && (data[0] & 0x80);
  fuzz::exercise_new_image(
      data, size,
      [static_image](std::shared_ptr<BlockDevice> file, uint64_t bytes) {
        return create_vdi(std::move(file), VdiCreateOptions{bytes, static_image});
      },
      open);
  return 0;
}
