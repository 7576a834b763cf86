// The usage examples in the public headers, compiled and run, so the
// headers (the manual) cannot drift from the API.
#include <catch2/catch.hpp>

#include "qcowkit/file_device.hpp"
#include "qcowkit/image_opener.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/mutex.hpp"
#include "qcowkit/qcow2.hpp"
#include "qcowkit/qcow2_stream.hpp"
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

// qcow2_stream.hpp (send_to_browser and report stand in for the page's)
std::vector<uint8_t> downloaded;
uint64_t reported = 0;
Status send_to_browser(ConstByteSpan bytes) {
  downloaded.insert(downloaded.end(), bytes.begin(), bytes.end());
  return {};
}
void report(uint64_t done, uint64_t) { reported = done; }

class Download : public ByteSink {
 public:
  Status write(ConstByteSpan bytes) override {
    return send_to_browser(bytes);  // or fwrite, write(2): FdByteSink
  }
};

Status stream_image(BlockDevice& source) {
  Download out;
  Qcow2StreamOptions options;
  options.layout.cluster_size = 65536;
  options.compress = true;
  auto writer = Qcow2StreamWriter::create(source, out, options);
  if (!writer.ok()) return writer.error();
  // Natively: return (*writer)->run(). Without threads (a browser
  // worker), a bounded share of the work at a time:
  for (;;) {
    auto p = (*writer)->step(8 << 20);  // about 8 MiB of the source
    if (!p.ok()) return p.error();
    report(p->done, p->total);
    if (p->finished) return {};
  }
}

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
  MemoryDevice source(3 << 20);
  REQUIRE(source.write(1 << 20, std::vector<uint8_t>(65536, 'x')).ok());
  CHECK(stream_image(source).ok());
  CHECK(reported == 2 * source.info().size);
  auto file = std::make_shared<MemoryDevice>(downloaded.size());
  REQUIRE(file->write(0, downloaded).ok());
  Qcow2OpenOptions read_only;
  read_only.read_only = true;
  auto image = Qcow2Image::open(file, read_only);
  REQUIRE(image.ok());
  std::vector<uint8_t> back(65536);
  REQUIRE((*image)->read(1 << 20, back).ok());
  CHECK(back == std::vector<uint8_t>(65536, 'x'));
}
