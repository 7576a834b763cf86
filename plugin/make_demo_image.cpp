// Writes a demo qcow2 image with qcowkit itself: 1 GiB virtual, some data,
// some explicit zeroes, and holes, so `nbdinfo --map` has something to show.
//   qcowkit-make-demo-image PATH
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;

namespace {

constexpr uint64_t MiB = 1u << 20;

int report(const std::string& path, const Error& error) {
  std::fprintf(stderr, "qcowkit-make-demo-image: %s: %s\n", path.c_str(), error.message.c_str());
  return 1;
}

// Bytes that differ from block to block, so a misplaced block is visible.
std::vector<uint8_t> block_contents(uint64_t offset, size_t size) {
  std::vector<uint8_t> data(size);
  uint64_t x = offset * 0x9e3779b97f4a7c15ull + 1;
  for (auto& b : data) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return data;
}

Status write_region(Qcow2Image& image, uint64_t offset, uint64_t length) {
  for (uint64_t done = 0; done < length; done += MiB) {
    auto data = block_contents(offset + done, MiB);
    QK_TRY(image.write(offset + done, ConstByteSpan(data)));
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: qcowkit-make-demo-image PATH\n");
    return 2;
  }
  const std::string path = argv[1];
  FileOpenOptions fo;
  fo.create = true;
  fo.exclusive = true;
  auto file = FileDevice::open(path, fo);
  if (!file.ok()) return report(path, file.error());

  Qcow2CreateOptions co;
  co.size = 1024 * MiB;
  auto image = Qcow2Image::create(std::shared_ptr<BlockDevice>(std::move(file).value()), co);
  if (!image.ok()) return report(path, image.error());
  Qcow2Image& img = **image;

  // A readable first sector, then data regions with holes between them.
  std::string banner = "qcowkit demo image: data at 0, 16M-48M, 256M-260M, 1020M-1024M; "
                       "zeroes at 512M-576M; the rest is holes.\n";
  std::vector<uint8_t> first(65536, 0);
  std::memcpy(first.data(), banner.data(), banner.size());
  Status st = img.write(0, ConstByteSpan(first));
  if (st.ok()) st = write_region(img, 16 * MiB, 32 * MiB);
  if (st.ok()) st = write_region(img, 256 * MiB, 4 * MiB);
  if (st.ok()) st = write_region(img, 1020 * MiB, 4 * MiB);
  if (st.ok()) st = img.write_zeroes(512 * MiB, 64 * MiB);
  if (st.ok()) st = img.close();
  if (!st.ok()) return report(path, st.error());
  return 0;
}
