// FileDevice's reservation ahead of a growing file (advise_appends): a file
// that grows a little at a time gets blocks reserved past its end
// (fallocate, keeping the size), its bytes never change because of it,
// close() gives the rest back, a file set to a large size at once stays
// sparse, and without the advice nothing is reserved.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Bytes the filesystem has allocated to the file.
uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_size);
}

// Whether the filesystem under `dir` can reserve blocks past a file's end;
// where it cannot, FileDevice reserves nothing, and the tests check that.
bool can_reserve_in(TempDir& dir) {
  const std::string probe = dir.file("probe");
  const int fd = ::open(probe.c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  const bool ok = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536) == 0;
  ::close(fd);
  ::unlink(probe.c_str());
  return ok;
}

// A new file at `path`, advised of appends.
std::unique_ptr<FileDevice> open_advised(const std::string& path) {
  auto dev = FileDevice::open(path, {.create = true});
  REQUIRE_OK(dev);
  (*dev)->advise_appends();
  return std::move(*dev);
}

// Grows `dev` to `mib` MiB, a MiB at a time.
void grow_by_mib(FileDevice& dev, uint64_t mib) {
  for (uint64_t size = kMiB; size <= mib * kMiB; size += kMiB) REQUIRE_OK(dev.resize(size));
}

}  // namespace

TEST_CASE("a file grown a cluster at a time reserves ahead and gives the rest back at close",
          "[devices][file]") {
  TempDir dir;
  const std::string path = dir.file("growing.img");
  auto dev = open_advised(path);
  // As an image appends clusters: grow by 64 KiB, write the new cluster.
  constexpr uint64_t kCluster = 65536;
  const uint64_t clusters = 40;  // 2.5 MiB
  for (uint64_t i = 0; i < clusters; ++i) {
    REQUIRE_OK(dev->resize((i + 1) * kCluster));
    REQUIRE_OK(dev->write(i * kCluster, pattern_bytes(kCluster, i + 1)));
  }
  CHECK(dev->info().size == clusters * kCluster);
  CHECK(file_size(path) == clusters * kCluster);
  // While open, the file holds blocks past its end, where the filesystem
  // can reserve them.
  const uint64_t while_open = allocated_bytes(path);
  INFO("allocated while open: " << while_open);
  if (can_reserve_in(dir))
    CHECK(while_open > clusters * kCluster);
  else
    CHECK(while_open <= clusters * kCluster);
  // Grown but not yet written: reads as zeroes, though reserved.
  REQUIRE_OK(dev->resize((clusters + 1) * kCluster));
  CHECK(is_all_zero(read_all(*dev, clusters * kCluster, kCluster)));
  REQUIRE_OK(dev->close());

  CHECK(file_size(path) == (clusters + 1) * kCluster);
  // Nothing past the end once closed: at most the file's own bytes (the
  // last, unwritten cluster may stay reserved inside the file).
  CHECK(allocated_bytes(path) <= (clusters + 1) * kCluster);
  auto again = FileDevice::open(path, {.read_only = true});
  REQUIRE_OK(again);
  for (uint64_t i = 0; i < clusters; ++i)
    CHECK(read_all(**again, i * kCluster, kCluster) == pattern_bytes(kCluster, i + 1));
  CHECK(is_all_zero(read_all(**again, clusters * kCluster, kCluster)));
}

TEST_CASE("a file set to a large size at once stays sparse", "[devices][file]") {
  TempDir dir;
  const std::string path = dir.file("raw.img");
  auto dev = open_advised(path);
  REQUIRE_OK(dev->resize(kMiB));
  REQUIRE_OK(dev->resize(4096 * kMiB));  // a raw output's whole size
  CHECK(allocated_bytes(path) < 8 * kMiB);
  REQUIRE_OK(dev->write(2048 * kMiB, pattern_bytes(65536, 3)));
  CHECK(allocated_bytes(path) < 8 * kMiB);
  REQUIRE_OK(dev->close());
  CHECK(allocated_bytes(path) < 8 * kMiB);
}

TEST_CASE("shrinking a file drops the reservation past its new end", "[devices][file]") {
  TempDir dir;
  const std::string path = dir.file("shrink.img");
  auto dev = open_advised(path);
  grow_by_mib(*dev, 8);
  REQUIRE_OK(dev->write(0, pattern_bytes(kMiB, 9)));
  REQUIRE_OK(dev->resize(kMiB));
  CHECK(allocated_bytes(path) <= kMiB);
  // Growing again reserves again and still reads zeroes past the old end.
  REQUIRE_OK(dev->resize(2 * kMiB));
  if (can_reserve_in(dir)) CHECK(allocated_bytes(path) > 2 * kMiB);
  CHECK(is_all_zero(read_all(*dev, kMiB, kMiB)));
  CHECK(read_all(*dev, 0, kMiB) == pattern_bytes(kMiB, 9));
  REQUIRE_OK(dev->close());
  CHECK(file_size(path) == 2 * kMiB);
  CHECK(allocated_bytes(path) <= 2 * kMiB);
}

TEST_CASE("without the advice a growing file reserves nothing", "[devices][file]") {
  TempDir dir;
  const std::string path = dir.file("plain.img");
  auto opened = FileDevice::open(path, {.create = true});
  REQUIRE_OK(opened);
  auto dev = std::move(*opened);
  grow_by_mib(*dev, 8);
  REQUIRE_OK(dev->write(0, pattern_bytes(kMiB, 5)));
  // The written MiB, not the 8 MiB size nor anything past it.
  CHECK(allocated_bytes(path) <= 2 * kMiB);
  REQUIRE_OK(dev->close());
}

TEST_CASE("a qcow2 image advises its file of appends, which ends without a reservation",
          "[devices][file][qcow2]") {
  TempDir dir;
  const std::string path = dir.file("image.qcow2");
  auto file = FileDevice::open(path, {.create = true});
  REQUIRE_OK(file);
  std::shared_ptr<FileDevice> device(std::move(*file));
  Qcow2CreateOptions o;
  o.size = 64 * kMiB;
  auto created = Qcow2Image::create(device, o);
  REQUIRE_OK(created);
  // 8 MiB appended a cluster at a time, as a conversion writes.
  for (uint64_t offset = 0; offset < 8 * kMiB; offset += 65536)
    REQUIRE_OK((*created)->write(offset, pattern_bytes(65536, offset / 65536 + 1)));
  REQUIRE_OK((*created)->flush());
  const uint64_t size = file_size(path);
  if (can_reserve_in(dir))
    CHECK(allocated_bytes(path) > size);
  else
    CHECK(allocated_bytes(path) <= size + 65536);
  REQUIRE_OK((*created)->close());
  REQUIRE_OK(device->close());
  CHECK(file_size(path) == size);
  CHECK(allocated_bytes(path) <= size);

  auto reopened = FileDevice::open(path, {.read_only = true});
  REQUIRE_OK(reopened);
  std::shared_ptr<BlockDevice> ro(std::move(*reopened));
  Qcow2OpenOptions read_only;
  read_only.read_only = true;
  auto image = Qcow2Image::open(ro, read_only);
  REQUIRE_OK(image);
  for (uint64_t offset = 0; offset < 8 * kMiB; offset += 65536)
    CHECK(read_all(**image, offset, 65536) == pattern_bytes(65536, offset / 65536 + 1));
  auto report = (*image)->check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
}
