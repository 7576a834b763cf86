// Disk full: a qcow2 image in a FileDevice on a small tmpfs (DIR, set up by
// run-disk-full.sh). Data is written and flushed, then a filler file takes
// every free byte. New allocations must then fail with ENOSPC (at the write or
// at the flush), the flushed data must still read back, and once the filler
// is gone the image must open with no corruption, keep every flushed byte,
// repair its leaks and take new writes.
//   reliability-disk-full DIR
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;

namespace {

int failures = 0, passes = 0;

void expect(bool condition, const std::string& what) {
  std::printf("%s: %s\n", condition ? "ok" : "FAIL", what.c_str());
  if (!condition) ++failures; else ++passes;
}

template <class T>
bool ok(const Result<T>& r, const std::string& what) {
  expect(r.ok(), what + (r.ok() ? "" : " (" + r.error().message + ")"));
  return r.ok();
}

std::vector<uint8_t> pattern(size_t n, unsigned seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 31 + seed) | 1);
  return v;
}

// Fills the filesystem: appends to `path` until the kernel says ENOSPC.
bool fill_disk(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return false;
  std::vector<char> block(4096, 'x');
  while (::write(fd, block.data(), block.size()) > 0) {}
  const int err = errno;
  ::close(fd);
  return err == ENOSPC;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR-ON-A-SMALL-TMPFS\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const std::string image_path = dir + "/disk.qcow2", filler = dir + "/filler";
  const uint64_t kVirtual = 64u << 20, kFlushed = 1u << 20;
  const auto flushed_data = pattern(kFlushed, 7);
  {
    auto file = FileDevice::open(image_path, {.create = true, .truncate = true});
    if (!ok(file, "create the image file")) return 1;
    Qcow2CreateOptions create;
    create.size = kVirtual;
    create.cluster_size = 65536;
    auto image = Qcow2Image::create(std::move(*file), create);
    if (!ok(image, "create a 64 MiB image")) return 1;
    ok((*image)->write(0, flushed_data), "write 1 MiB");
    ok((*image)->flush(), "flush it");

    expect(fill_disk(filler), "the filler file ran into ENOSPC");
    // Keep allocating until the disk refuses; stop at the first error.
    Status failed;
    for (uint64_t at = 8u << 20; at + (1u << 20) <= kVirtual && failed.ok(); at += 1u << 20) {
      failed = (*image)->write(at, pattern(1u << 20, static_cast<unsigned>(at >> 20)));
      if (failed.ok()) failed = (*image)->flush();
    }
    expect(!failed.ok(), "writes into new clusters fail once the disk is full");
    if (!failed.ok())
      expect(failed.error().code == ENOSPC, "the error is ENOSPC: " + failed.error().message);
    std::vector<uint8_t> back(kFlushed);
    ok((*image)->read(0, back), "read the flushed data on the full disk");
    expect(back == flushed_data, "the flushed data is intact on the full disk");
    (void)(*image)->close();  // may fail: the disk is still full
  }
  expect(::unlink(filler.c_str()) == 0, "the space returns (filler removed)");
  {
    auto file = FileDevice::open(image_path);
    if (!ok(file, "reopen the image file")) return 1;
    auto image = Qcow2Image::open(std::move(*file));
    if (!ok(image, "the image opens after the space returns")) return 1;
    auto report = (*image)->check(RepairMode::none);
    if (ok(report, "check"))
      expect(report->corruptions == 0, "no corruption (" + std::to_string(report->leaks) + " leaked clusters)");
    std::vector<uint8_t> back(kFlushed);
    ok((*image)->read(0, back), "read the flushed data");
    expect(back == flushed_data, "every flushed byte is intact");
    auto repaired = (*image)->check(RepairMode::leaks);
    if (ok(repaired, "repair leaks")) expect(repaired->corruptions == 0, "repair leaves no corruption");
    const auto later = pattern(1u << 20, 99);
    ok((*image)->write(32u << 20, later), "a new write works again");
    ok((*image)->flush(), "and flushes");
    std::vector<uint8_t> again(later.size());
    ok((*image)->read(32u << 20, again), "read it back");
    expect(again == later, "it reads back");
    auto final_report = (*image)->check(RepairMode::none);
    if (ok(final_report, "final check"))
      expect(final_report->corruptions == 0 && final_report->leaks == 0, "the image is clean");
    ok((*image)->close(), "close");
  }
  std::printf("disk full: %d checks passed, %d failed\n", passes, failures);
  return failures ? 1 : 0;
}
