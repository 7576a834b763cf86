// fuzz_qcow1: qcow version 1 images (read-only), hostile; see
// fuzz_format_support.hpp for what is exercised.
#include "fuzz_format_support.hpp"
#include "qcowkit/qcow1.hpp"

using namespace qcowkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;
  fuzz::exercise_image_file(data, size, [](std::shared_ptr<BlockDevice> file, bool read_only) {
    return open_qcow1(std::move(file), read_only);
  });
  return 0;
}
