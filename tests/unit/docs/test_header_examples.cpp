// The usage examples in the public headers, compiled and run, so the
// headers (the manual) cannot drift from the API.
#include <catch2/catch.hpp>

#include "qcowkit/file_device.hpp"
#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/mutex.hpp"
#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using qcowkit::test::TempDir;

namespace {

// A small qcow2 file to open.
std::string make_image_file(const std::string& path) {
  auto file = FileDevice::open(path, {.create = true});
  REQUIRE(file.ok());
  Qcow2CreateOptions create;
  create.size = 1 << 20;
  auto image = Qcow2Image::create(std::shared_ptr<BlockDevice>(std::move(*file)), create);
  REQUIRE(image.ok());
  REQUIRE((*image)->close().ok());
  return path;
}

// qcow2.hpp
Status read_first_block(const std::string& path) {
  auto file = FileDevice::open(path, {.read_only = true});
  if (!file.ok()) return file.error();
  Qcow2OpenOptions options;
  options.read_only = true;
  auto image = Qcow2Image::open(std::move(*file), options);
  if (!image.ok()) return image.error();
  std::vector<uint8_t> buffer(4096);
  Status st = (*image)->read(0, buffer);
  return st;
}

// image_opener.hpp
Status open_by_name(const std::string& path, ByteSpan buffer) {
  ImageOpenOptions o;
  o.backing = BackingPolicy::same_directory;
  auto image = open_named_image(posix_host(), path, o);
  if (!image.ok()) return image.error();
  Status st = image->device->read(0, buffer);
  if (!st.ok()) return st;
  st = image->close();
  return st;
}

// mutex.hpp
class Table {
 public:
  void add(int row) {
    MutexLock lock(mutex_);
    rows_.push_back(row);
  }
  size_t size() {
    MutexLock lock(mutex_);
    return rows_.size();
  }

 private:
  Mutex mutex_;
  std::vector<int> rows_ QK_GUARDED_BY(mutex_);
};

}  // namespace

TEST_CASE("the header examples compile and work", "[docs]") {
  TempDir dir;
  const std::string path = make_image_file(dir.file("header-example.qcow2"));
  CHECK(read_first_block(path).ok());
  std::vector<uint8_t> buffer(512, 0xff);
  CHECK(open_by_name(path, ByteSpan(buffer)).ok());
  CHECK(buffer == std::vector<uint8_t>(512, 0));
  CHECK_FALSE(read_first_block(path + ".missing").ok());
  Table table;
  table.add(1);
  CHECK(table.size() == 1);
}
