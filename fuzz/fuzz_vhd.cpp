// fuzz_vhd: VHD (vpc) images, hostile and new, dynamic and fixed, and
// differencing over a 3 MiB parent (InputFiles); see fuzz_format_support.hpp
// for what is exercised.
#include "fuzz_format_support.hpp"
#include "qcowkit/vhd.hpp"

using namespace qcowkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;
  auto open = [](std::shared_ptr<BlockDevice> file, bool read_only) {
    return open_vhd(std::move(file), read_only);
  };
  fuzz::exercise_image_file(data, size, open);
  fuzz::exercise_image_file(data, size, [&](std::shared_ptr<BlockDevice> file, bool read_only) {
    fuzz::InputFiles files(data, size);
    return open_vhd_with_files(std::move(file), read_only, files);
  });
  const bool fixed = size > 0 && (data[0] & 0x80);
  fuzz::exercise_new_image(
      data, size,
      [fixed](std::shared_ptr<BlockDevice> file, uint64_t bytes) {
        return create_vhd(std::move(file), VhdCreateOptions{bytes, fixed, false});
      },
      open);
  return 0;
}
