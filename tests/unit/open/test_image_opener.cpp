// The core's image opener: format by content, the backing policies, the
// depth bound and locks.
#include "qcowkit/file_device.hpp"
#include "qcowkit/image_opener.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

void make_qcow2(const std::string& path, const std::string& backing = "", uint64_t size = 1u << 20) {
  auto file = FileDevice::open(path, {.create = true});
  REQUIRE_OK(file);
  Qcow2CreateOptions o;
  o.size = size;
  o.backing_file = backing;
  auto image = Qcow2Image::create(std::shared_ptr<BlockDevice>(std::move(*file)), o);
  REQUIRE_OK(image);
  REQUIRE_OK((*image)->close());
}

void make_raw(const std::string& path, uint8_t fill) {
  auto file = FileDevice::open(path, {.create = true});
  REQUIRE_OK(file);
  std::vector<uint8_t> bytes(1u << 20, fill);
  REQUIRE_OK((*file)->resize(bytes.size()));
  REQUIRE_OK((*file)->write(0, bytes));
  REQUIRE_OK((*file)->close());
}

}  // namespace

TEST_CASE("the opener decides the format by content and reads through allowed backing files",
          "[opener]") {
  TempDir tmp;
  make_raw(tmp.file("base.raw"), 0x42);
  make_qcow2(tmp.file("top.qcow2"), "base.raw");
  ImageOpenOptions o;
  o.backing = BackingPolicy::same_directory;
  auto image = open_named_image(posix_host(), tmp.file("top.qcow2"), o);
  REQUIRE_OK(image);
  CHECK(image->format == "qcow2");
  REQUIRE(image->backing);
  CHECK(image->backing->format == "raw");
  CHECK(read_all(*image->device, 4096, 16) == std::vector<uint8_t>(16, 0x42));
  REQUIRE_OK(image->close());
  auto raw = open_named_image(posix_host(), tmp.file("base.raw"), {});
  REQUIRE_OK(raw);
  CHECK(raw->format == "raw");
  CHECK_FALSE(raw->qcow2);
}

TEST_CASE("the opener applies the caller's backing policy", "[opener]") {
  TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "other");
  make_raw((tmp.path() / "other" / "base.raw").string(), 1);
  make_qcow2(tmp.file("escape.qcow2"), "other/base.raw");
  make_qcow2(tmp.file("json.qcow2"), "json:{\"file.filename\":\"/etc/passwd\"}");

  ImageOpenOptions refuse;
  refuse.backing_required = true;
  refuse.refusal_hint = "say so";
  auto refused = open_named_image(posix_host(), tmp.file("escape.qcow2"), refuse);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == EPERM);
  CHECK(refused.error().message.find("say so") != std::string::npos);
  // Without backing_required the image opens alone (unallocated reads zero).
  auto alone = open_named_image(posix_host(), tmp.file("escape.qcow2"), {});
  REQUIRE_OK(alone);
  CHECK_FALSE(alone->backing);

  ImageOpenOptions same_dir;
  same_dir.backing = BackingPolicy::same_directory;
  auto escaped = open_named_image(posix_host(), tmp.file("escape.qcow2"), same_dir);
  REQUIRE_FALSE(escaped.ok());
  CHECK(escaped.error().message.find("own directory") != std::string::npos);

  ImageOpenOptions allow;
  allow.backing = BackingPolicy::allow;
  auto allowed = open_named_image(posix_host(), tmp.file("escape.qcow2"), allow);
  REQUIRE_OK(allowed);
  CHECK(read_all(*allowed->device, 0, 4) == std::vector<uint8_t>(4, 1));
  REQUIRE_OK(allowed->close());
  auto json = open_named_image(posix_host(), tmp.file("json.qcow2"), allow);
  REQUIRE_FALSE(json.ok());
  CHECK(json.error().code == ENOTSUP);
}

TEST_CASE("the opener bounds the chain and refuses an image that backs itself", "[opener]") {
  TempDir tmp;
  make_qcow2(tmp.file("a.qcow2"), "b.qcow2");
  make_qcow2(tmp.file("b.qcow2"), "a.qcow2");
  make_qcow2(tmp.file("self.qcow2"), "self.qcow2");
  ImageOpenOptions allow;
  allow.backing = BackingPolicy::allow;
  allow.lock = false;  // a loop opens the same files again
  auto loop = open_named_image(posix_host(), tmp.file("a.qcow2"), allow);
  REQUIRE_FALSE(loop.ok());
  CHECK(loop.error().code == ELOOP);
  ImageOpenOptions same_dir;
  same_dir.backing = BackingPolicy::same_directory;
  auto self = open_named_image(posix_host(), tmp.file("self.qcow2"), same_dir);
  REQUIRE_FALSE(self.ok());
  CHECK(self.error().message.find("the image itself") != std::string::npos);
}

TEST_CASE("the opener locks as QEMU does: one writer, or many readers", "[opener]") {
  TempDir tmp;
  make_qcow2(tmp.file("disk.qcow2"));
  ImageOpenOptions writer;
  writer.writable = true;
  auto first = open_named_image(posix_host(), tmp.file("disk.qcow2"), writer);
  REQUIRE_OK(first);
  auto second = open_named_image(posix_host(), tmp.file("disk.qcow2"), writer);
  CHECK_FALSE(second.ok());
  auto reader = open_named_image(posix_host(), tmp.file("disk.qcow2"), {});
  CHECK_FALSE(reader.ok());
  ImageOpenOptions unlocked;
  unlocked.lock = false;
  CHECK(open_named_image(posix_host(), tmp.file("disk.qcow2"), unlocked).ok());
  REQUIRE_OK(first->close());
  auto r1 = open_named_image(posix_host(), tmp.file("disk.qcow2"), {});
  auto r2 = open_named_image(posix_host(), tmp.file("disk.qcow2"), {});
  CHECK(r1.ok());
  CHECK(r2.ok());
}

namespace {

void write_text(const std::string& path, const std::string& text) {
  auto file = FileDevice::open(path, {.create = true});
  REQUIRE_OK(file);
  REQUIRE_OK((*file)->resize(text.size()));
  REQUIRE_OK((*file)->write(0, ConstByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size())));
  REQUIRE_OK((*file)->close());
}

std::string flat_descriptor(const std::string& extent) {
  return "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n"
         "RW 2048 FLAT \"" + extent + "\" 0\n";
}

}  // namespace

TEST_CASE("the opener opens a vmdk descriptor's extent files under the extent policy only",
          "[opener][vmdk]") {
  TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "other");
  make_raw(tmp.file("disk-flat.vmdk"), 0x5a);
  make_raw((tmp.path() / "other" / "far-flat.vmdk").string(), 0x33);
  write_text(tmp.file("disk.vmdk"), flat_descriptor("disk-flat.vmdk"));
  write_text(tmp.file("far.vmdk"), flat_descriptor("other/far-flat.vmdk"));
  write_text(tmp.file("self.vmdk"), flat_descriptor("self.vmdk"));
  write_text(tmp.file("twice.vmdk"), flat_descriptor("disk-flat.vmdk") + "RW 2048 FLAT \"./disk-flat.vmdk\" 0\n");

  auto image = open_named_image(posix_host(), tmp.file("disk.vmdk"), {});
  REQUIRE_OK(image);
  CHECK(image->format == "vmdk");
  CHECK(image->device->info().size == 1u << 20);
  CHECK(image->parts.size() == 1);
  CHECK(read_all(*image->device, 4096, 16) == std::vector<uint8_t>(16, 0x5a));
  CHECK(image->device->write(0, std::vector<uint8_t>(512)).error().code == EROFS);
  REQUIRE_OK(image->close());

  ImageOpenOptions writable;
  writable.writable = true;
  CHECK(open_named_image(posix_host(), tmp.file("disk.vmdk"), writable).error().code == EROFS);

  auto far = open_named_image(posix_host(), tmp.file("far.vmdk"), {});
  REQUIRE_FALSE(far.ok());
  CHECK(far.error().code == EPERM);
  CHECK_THAT(far.error().message, Catch::Matchers::Contains("own directory"));
  ImageOpenOptions refuse;
  refuse.extent_files = BackingPolicy::refuse;
  CHECK(open_named_image(posix_host(), tmp.file("disk.vmdk"), refuse).error().code == EPERM);
  ImageOpenOptions allow;
  allow.extent_files = BackingPolicy::allow;
  auto far_allowed = open_named_image(posix_host(), tmp.file("far.vmdk"), allow);
  REQUIRE_OK(far_allowed);
  CHECK(read_all(*far_allowed->device, 0, 16) == std::vector<uint8_t>(16, 0x33));
  REQUIRE_OK(far_allowed->close());

  // One file named by two extents is opened once.
  auto twice = open_named_image(posix_host(), tmp.file("twice.vmdk"), {});
  REQUIRE_OK(twice);
  CHECK(twice->device->info().size == 2u << 20);
  CHECK(twice->parts.size() == 1);
  CHECK(read_all(*twice->device, (1u << 20) + 4096, 16) == std::vector<uint8_t>(16, 0x5a));
  REQUIRE_OK(twice->close());

  // The descriptor as its own extent: refused whatever the policy.
  CHECK(open_named_image(posix_host(), tmp.file("self.vmdk"), {}).error().code == EPERM);
  CHECK(open_named_image(posix_host(), tmp.file("self.vmdk"), allow).error().code == ELOOP);
}

TEST_CASE("check_named_image runs the format's check, or says the format has none",
          "[opener][vmdk]") {
  TempDir tmp;
  make_raw(tmp.file("disk-flat.vmdk"), 1);
  write_text(tmp.file("disk.vmdk"), flat_descriptor("disk-flat.vmdk"));
  auto report = check_named_image(posix_host(), tmp.file("disk.vmdk"), {});
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  auto raw = check_named_image(posix_host(), tmp.file("disk-flat.vmdk"), {});
  REQUIRE_FALSE(raw.ok());
  CHECK(raw.error().code == ENOTSUP);
  CHECK_THAT(raw.error().message, Catch::Matchers::Contains("does not support checks"));
}
