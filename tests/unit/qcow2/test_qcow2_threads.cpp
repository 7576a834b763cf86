// Parallel use of one image: what nbdkit's parallel thread model does.
#include <thread>

#include "qcow2_test_images.hpp"
#include "qcowkit/file_device.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

TEST_CASE("parallel writers, zeroers and readers on one image", "[qcow2][threads]") {
  TempDir tmp;
  auto file = FileDevice::open(tmp.file("t.qcow2"), {.create = true});
  REQUIRE_OK(file);
  std::shared_ptr<BlockDevice> dev(std::move(*file));
  Qcow2CreateOptions o;
  o.size = 64u << 20;
  o.cluster_size = 4096;
  auto created = Qcow2Image::create(dev, o);
  REQUIRE_OK(created);
  auto& image = **created;
  constexpr int kThreads = 8;
  constexpr uint64_t kSlice = 8u << 20;  // each thread owns a slice
  std::vector<std::thread> threads;
  std::vector<std::string> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t base = t * kSlice;
      for (int round = 0; round < 200; ++round) {
        const uint64_t offset = base + (uint64_t(round * 7919) % (kSlice / 512 - 64)) * 512;
        auto data = pattern_bytes(3 * 4096 + 512, t * 1000 + round);
        Status st = image.write(offset, data);
        if (st.ok() && round % 5 == 0) st = image.write_zeroes(offset + 4096, 4096, {.may_trim = round % 2 == 0});
        if (st.ok() && round % 5 == 0) std::fill(data.begin() + 4096, data.begin() + 8192, 0);
        std::vector<uint8_t> back(data.size());
        if (st.ok()) st = image.read(offset, back);
        if (st.ok() && back != data) st = make_error(EIO, "read back differs at " + std::to_string(offset));
        if (st.ok() && round % 50 == 0) st = image.flush();
        if (!st.ok()) {
          errors[t] = st.error().message;
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e.empty());
  REQUIRE_OK(image.flush());
  auto report = image.check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
}
