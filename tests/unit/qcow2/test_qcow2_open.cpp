// Opening images: what is accepted, and every refusal with its reason.
#include "qcow2/format.hpp"
#include "qcow2_test_images.hpp"

using namespace qcowkit;
using namespace qcowkit::test;
using namespace qcowkit::qcow2;

TEST_CASE("created images open with the options they were made with", "[qcow2][open]") {
  for (uint32_t cs : {512u, 4096u, 65536u, 2u << 20})
    for (unsigned bits : {1u, 8u, 16u, 64u}) {
      Qcow2CreateOptions o;
      o.size = 10u << 20;
      o.cluster_size = cs;
      o.refcount_bits = bits;
      o.lazy_refcounts = bits == 8;
      auto image = open_ok(make_image(o));
      const Qcow2Details d = image->details();
      CHECK(d.version == 3);
      CHECK(d.cluster_size == cs);
      CHECK(d.refcount_bits == bits);
      CHECK(d.virtual_size == (10u << 20));
      CHECK(d.lazy_refcounts == (bits == 8));
      auto report = image->check();
      REQUIRE_OK(report);
      CHECK(report->corruptions == 0);
      CHECK(report->leaks == 0);
    }
  Qcow2CreateOptions v2;
  v2.size = 1 << 20;
  v2.version = 2;
  CHECK(open_ok(make_image(v2))->details().version == 2);
}

TEST_CASE("create refuses impossible options", "[qcow2][open]") {
  auto dev = std::make_shared<MemoryDevice>(0);
  auto refuse = [&](Qcow2CreateOptions o, const std::string& words) {
    auto image = Qcow2Image::create(dev, o);
    REQUIRE_FALSE(image.ok());
    INFO(image.error().message);
    CHECK(image.error().message.find(words) != std::string::npos);
  };
  Qcow2CreateOptions o;
  o.size = 1 << 20;
  o.cluster_size = 1000;
  refuse(o, "cluster size");
  o.cluster_size = 4u << 20;
  refuse(o, "cluster size");
  o.cluster_size = 65536;
  o.refcount_bits = 3;
  refuse(o, "refcount bits");
  o.refcount_bits = 8;
  o.version = 2;
  refuse(o, "16-bit");
  o = {};
  o.size = 1000;
  refuse(o, "multiple of 512");
  o = {};
  o.size = 1 << 20;
  o.version = 2;
  o.lazy_refcounts = true;
  refuse(o, "version 3");
}

TEST_CASE("hostile headers are refused with a reason", "[qcow2][open][hostile]") {
  auto fresh = [] { return make_image(4u << 20); };
  std::shared_ptr<MemoryDevice> dev;

  SECTION("bad magic") { dev = fresh(); poke32(*dev, 0, 0x12345678); open_fails(dev, "not a qcow2"); }
  SECTION("version 4") { dev = fresh(); poke32(*dev, 4, 4); open_fails(dev, "version 4"); }
  SECTION("cluster_bits 8") { dev = fresh(); poke32(*dev, 20, 8); open_fails(dev, "cluster_bits"); }
  SECTION("cluster_bits 22") { dev = fresh(); poke32(*dev, 20, 22); open_fails(dev, "cluster_bits"); }
  SECTION("encryption") {
    dev = fresh();
    poke32(*dev, 32, 2);
    CHECK(open_fails(dev, "encrypted").code == ENOTSUP);
  }
  SECTION("unknown incompatible feature") {
    dev = fresh();
    poke64(*dev, kOffIncompatible, 1u << 7);
    CHECK(open_fails(dev, "unknown incompatible").code == ENOTSUP);
  }
  SECTION("refcount_order 7") { dev = fresh(); poke32(*dev, 96, 7); open_fails(dev, "refcount_order"); }
  SECTION("header_length not a multiple of 8") { dev = fresh(); poke32(*dev, 100, 105); open_fails(dev, "header_length"); }
  SECTION("l1_size too small for the virtual size") {
    dev = fresh();
    poke64(*dev, kOffSize, 1ull << 40);
    open_fails(dev, "too small");
  }
  SECTION("a tiny file claiming an exabyte") {
    dev = fresh();
    poke64(*dev, kOffSize, 1ull << 60);
    poke32(*dev, kOffL1Size, 0x7fffffff);
    open_fails(dev, "32 MiB");
  }
  SECTION("refcount_table_clusters 0") { dev = fresh(); poke32(*dev, kOffRefcountTableClusters, 0); open_fails(dev, "refcount_table_clusters is 0"); }
  SECTION("refcount table over 8 MiB") { dev = fresh(); poke32(*dev, kOffRefcountTableClusters, 1000); open_fails(dev, "8 MiB"); }
  SECTION("unaligned L1 table") { dev = fresh(); poke64(*dev, kOffL1Offset, 65536 * 3 + 8); open_fails(dev, "not cluster aligned"); }
  SECTION("L1 table at offset 0 overlaps the header") { dev = fresh(); poke64(*dev, kOffL1Offset, 0); open_fails(dev, "overlaps the header"); }
  SECTION("refcount table overlapping the L1 table") {
    dev = fresh();
    poke64(*dev, kOffRefcountTableOffset, peek64(*dev, kOffL1Offset));
    open_fails(dev, "overlaps");
  }
  SECTION("offsets near 2^63") { dev = fresh(); poke64(*dev, kOffL1Offset, 0x7fffffffffff0000ull); open_fails(dev, "largest offset"); }
  SECTION("an extension longer than the first cluster") {
    dev = fresh();
    poke32(*dev, 112, 0x12345678);
    poke32(*dev, 116, 70000);
    open_fails(dev, "past the end of the first cluster");
  }
  SECTION("a known extension twice") {
    dev = fresh();
    poke(*dev, 112, {0xe2, 0x79, 0x2a, 0xca, 0, 0, 0, 3, 'r', 'a', 'w', 0, 0, 0, 0, 0,
                     0xe2, 0x79, 0x2a, 0xca, 0, 0, 0, 3, 'r', 'a', 'w', 0, 0, 0, 0, 0});
    open_fails(dev, "appears twice");
  }
  SECTION("a backing file name longer than 1023 bytes") {
    dev = fresh();
    poke64(*dev, 8, 512);
    poke32(*dev, 16, 2000);
    open_fails(dev, "1023");
  }
  SECTION("a backing file name outside cluster 0") {
    dev = fresh();
    poke64(*dev, 8, 65530);
    poke32(*dev, 16, 100);
    open_fails(dev, "outside the first cluster");
  }
  SECTION("compression type without its feature bit") { dev = fresh(); poke(*dev, 104, {1}); open_fails(dev, "compression"); }
  SECTION("extended L2 with 4 KiB clusters") {
    dev = make_image(1 << 20, 4096);
    poke64(*dev, kOffIncompatible, kIncompatExtendedL2);
    open_fails(dev, "16 KiB");
  }
  SECTION("an external data file that is not given") {
    dev = fresh();
    poke64(*dev, kOffIncompatible, kIncompatDataFile);
    open_fails(dev, "external data file");
  }
  SECTION("more than 65536 snapshots") {
    dev = fresh();
    poke32(*dev, 60, 70000);
    poke64(*dev, 64, 65536 * 10);
    open_fails(dev, "65536");
  }
  SECTION("a truncated file") {
    dev = fresh();
    REQUIRE_OK(dev->resize(50));
    open_fails(dev, "too small");
  }
  SECTION("L1 table past the end of the file") {
    dev = fresh();
    poke64(*dev, kOffL1Offset, 1ull << 30);
    open_fails(dev, "past the end of the file");
  }
  SECTION("reserved bits in an L1 entry") {
    dev = fresh();
    poke64(*dev, peek64(*dev, kOffL1Offset), 0x100 | 0x30000);
    open_fails(dev, "reserved bits");
  }
  SECTION("an L2 table that is the refcount table") {
    dev = fresh();
    poke64(*dev, peek64(*dev, kOffL1Offset), peek64(*dev, kOffRefcountTableOffset) | kCopied);
    open_fails(dev, "overlaps other metadata");
  }
  SECTION("two L1 entries sharing one L2 table") {
    dev = make_image(64u << 20, 4096);
    {
      auto image = open_ok(dev);
      std::vector<uint8_t> data(4096, 7);
      REQUIRE_OK(image->write(0, data));
      REQUIRE_OK(image->close());
    }
    const uint64_t l1 = peek64(*dev, kOffL1Offset);
    poke64(*dev, l1 + 8, peek64(*dev, l1));
    open_fails(dev, "overlaps other metadata");
  }
}

TEST_CASE("a data cluster pointing at metadata is caught, not written", "[qcow2][open][hostile]") {
  auto dev = make_image(4u << 20, 4096);
  {
    auto image = open_ok(dev);
    std::vector<uint8_t> data(4096, 7);
    REQUIRE_OK(image->write(0, data));
    REQUIRE_OK(image->close());
  }
  const uint64_t l1_offset = peek64(*dev, kOffL1Offset);
  const uint64_t l2 = peek64(*dev, l1_offset) & kOffsetMask;
  poke64(*dev, l2, l1_offset | kCopied);  // guest cluster 0 -> the L1 table
  auto image = open_ok(dev);
  std::vector<uint8_t> data(512, 9);
  auto st = image->write(0, data);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("overlaps metadata") != std::string::npos);
  CHECK(image->is_corrupt());
  CHECK(peek64(*dev, l1_offset) == (l2 | kCopied));  // the L1 table is untouched
  // The corrupt bit is now set on disk: read-write opens are refused.
  image.reset();
  CHECK(open_fails(dev, "marked corrupt", false).code == EROFS);
  open_ok(dev, true);
}

TEST_CASE("unaligned and out-of-file L2 entries read as errors", "[qcow2][open][hostile]") {
  auto dev = make_image(4u << 20, 4096);
  {
    auto image = open_ok(dev);
    std::vector<uint8_t> data(8192, 7);
    REQUIRE_OK(image->write(0, data));
    REQUIRE_OK(image->close());
  }
  const uint64_t l2 = peek64(*dev, peek64(*dev, kOffL1Offset)) & kOffsetMask;
  poke64(*dev, l2, 0x1000 + 0x200);      // unaligned data cluster
  poke64(*dev, l2 + 8, 0x100 | kCompressed | (uint64_t{0x7f} << 54));  // compressed past EOF
  auto image = open_ok(dev, true);
  std::vector<uint8_t> buf(4096);
  auto st = image->read(0, buf);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("not cluster aligned") != std::string::npos);
  st = image->read(4096, buf);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EIO);
}

TEST_CASE("a dirty image: read-only opens as is, read-write rebuilds refcounts", "[qcow2][open]") {
  Qcow2CreateOptions o;
  o.size = 8u << 20;
  o.cluster_size = 4096;
  o.lazy_refcounts = true;
  auto dev = make_image(o);
  {
    auto image = open_ok(dev);
    std::vector<uint8_t> data(65536, 3);
    REQUIRE_OK(image->write(0, data));
    REQUIRE_OK(image->close());
  }
  // What a crash with lazy refcounts leaves: the dirty bit, and refcounts
  // that do not count the new clusters.
  poke64(*dev, kOffIncompatible, kIncompatDirty);
  const uint64_t refblock = peek64(*dev, peek64(*dev, kOffRefcountTableOffset));
  std::vector<uint8_t> zeroes(4096, 0);
  poke(*dev, refblock + 2 * 8, std::vector<uint8_t>(64, 0));  // counts of clusters 8..39 gone
  {
    auto ro = open_ok(dev, true);
    CHECK(ro->details().dirty);
    auto report = ro->check();
    REQUIRE_OK(report);
    CHECK(report->corruptions > 0);
  }
  auto rw = open_ok(dev);
  CHECK_FALSE(rw->details().dirty);
  auto report = rw->check();
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
  CHECK(read_all(*rw, 0, 65536) == std::vector<uint8_t>(65536, 3));
}

TEST_CASE("the first write clears the autoclear bits (bitmaps become inconsistent)", "[qcow2][open]") {
  auto dev = make_image(1u << 20);
  poke64(*dev, kOffAutoclear, kAutoclearBitmaps | (1u << 5));
  auto image = open_ok(dev);
  CHECK(peek64(*dev, kOffAutoclear) != 0);  // opening alone changes nothing
  std::vector<uint8_t> data(512, 1);
  REQUIRE_OK(image->write(0, data));
  CHECK(peek64(*dev, kOffAutoclear) == 0);
}

TEST_CASE("requests are checked like any BlockDevice's", "[qcow2][open]") {
  auto image = open_ok(make_image(1u << 20));
  std::vector<uint8_t> buf(4096);
  CHECK(image->read((1u << 20) - 100, buf).error().code == ERANGE);
  REQUIRE_OK(image->close());
  CHECK(image->read(0, buf).error().code == EBADF);
  auto ro = open_ok(make_image(1u << 20), true);
  CHECK(ro->write(0, buf).error().code == EROFS);
  CHECK(ro->discard(0, 4096).error().code == EROFS);
}
