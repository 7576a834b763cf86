// fuzz_vmdk: VMDK sparse extents, hostile and new, monolithicSparse and
// streamOptimized (written in order); descriptor files whose every extent
// is the input again (InputFiles); the check; see fuzz_format_support.hpp.
#include "fuzz_format_support.hpp"
#include "qcowkit/vmdk.hpp"

using namespace qcowkit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;
  auto open = [](std::shared_ptr<BlockDevice> file, bool read_only) {
    return open_vmdk(std::move(file), read_only);
  };
  fuzz::exercise_image_file(data, size, open);
  fuzz::exercise_image_file(data, size, [&](std::shared_ptr<BlockDevice> file, bool read_only) {
    fuzz::InputFiles files(data, size);
    return open_vmdk_with_files(std::move(file), read_only, files);
  });
  {
    fuzz::InputFiles files(data, size);
    (void)check_vmdk(*fuzz::memory_copy(data, size), files);
  }
  const bool stream = size > 0 && (data[0] & 0x80);
  fuzz::exercise_new_image(
      data, size,
      [stream](std::shared_ptr<BlockDevice> file, uint64_t bytes) {
        VmdkCreateOptions o;
        o.size = bytes;
        o.stream_optimized = stream;
        return create_vmdk(std::move(file), o);
      },
      open, stream);
  return 0;
}
