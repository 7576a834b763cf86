// The crash explorer over every kind of qcow2 image the engine writes to
// (see crash_explorer.hpp and core/testing/crash_explorer.hpp for what is
// checked). Each kind is one test, so CTest shows each one's time.
#include "crash_explorer.hpp"

using namespace qcowkit;
using namespace qcowkit::explorer;

namespace {

Qcow2CreateOptions geometry(uint32_t cluster_size, uint64_t size = 4u << 20) {
  Qcow2CreateOptions create;
  create.size = size;
  create.cluster_size = cluster_size;
  return create;
}

// Crash points spread over a round: `spacing` is about the round's device
// operations (hook calls) divided by the points.
ExplorerConfig config_for(uint32_t unit, uint64_t spacing = 40) {
  ExplorerConfig config;
  config.unit = unit;
  config.crash_points = 16;
  config.crash_spacing = spacing;
  return config;
}

std::shared_ptr<ExplorerTarget> qcow2_target(uint64_t metadata_cache_bytes = 32u << 20) {
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = metadata_cache_bytes;
  return std::make_shared<Qcow2Target>(options);
}

// An image qemu made: `commands` run in a fresh directory on img.qcow2.
std::vector<uint8_t> qemu_image(const std::vector<std::string>& commands) {
  test::TempDir dir;
  const std::string image = dir.file("img.qcow2");
  for (const std::string& command : commands) {
    std::string expanded = command;
    for (size_t at; (at = expanded.find("IMG")) != std::string::npos;)
      expanded.replace(at, 3, shell_quote(image));
    qemu(dir, expanded);
  }
  return read_file(image);
}

}  // namespace

TEST_CASE("explorer: qcow2 64k clusters", "[reliability][explorer]") {
  Kind kind{"qcow2 64k clusters"};
  kind.make_disk = [] { return engine_image(geometry(65536)); };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  run_kind(kind);
}

// The qcow2 filter over a plugin that takes only whole 4096-byte blocks: the
// engine's table entries, header fields and partial clusters (guest writes
// are 512-aligned) reach the disk as read-modify-writes of whole sectors,
// several in flight at once.
TEST_CASE("explorer: qcow2 64k clusters on a disk of 4096-byte sectors", "[reliability][explorer]") {
  Kind kind{"qcow2 64k on 4k sectors"};
  kind.make_disk = [] { return engine_image(geometry(65536)); };
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = 2 * 65536;  // tables evicted too
  kind.target = std::make_shared<Qcow2OnSectorsTarget>(4096, options);
  kind.config = config_for(65536);
  run_kind(kind);
}

// A metadata cache of two tables (the image has two L2 tables and a refcount
// block): L2 tables and refcount blocks are evicted (written without a
// flush) all the time.
TEST_CASE("explorer: qcow2 4k clusters with a tiny metadata cache", "[reliability][explorer]") {
  Kind kind{"qcow2 4k tiny-cache"};
  kind.make_disk = [] { return engine_image(geometry(4096)); };
  kind.target = qcow2_target(2 * 4096);
  kind.config = config_for(4096, 80);
  run_kind(kind);
}

TEST_CASE("explorer: qcow2 512-byte clusters", "[reliability][explorer]") {
  Kind kind{"qcow2 512b clusters"};
  kind.guest_size = 2u << 20;
  kind.make_disk = [] { return engine_image(geometry(512, 2u << 20)); };
  kind.target = qcow2_target(16 * 512);  // of ~90 tables: evictions
  kind.config = config_for(512, 100);
  kind.config.max_length = 128u << 10;
  run_kind(kind);
}

// As qemu writes them: clusters with only some subclusters allocated (the
// first half of every other cluster, 8 KiB further on in every third).
TEST_CASE("explorer: qcow2 extended L2 with partly allocated clusters", "[reliability][explorer]") {
  Kind kind{"qcow2 extended-l2"};
  kind.make_disk = [] {
    std::string io = "qemu-io -f qcow2";
    for (unsigned c = 0; c < 64; ++c) {
      if (c % 2 == 0) io += " -c 'write -P " + std::to_string(c + 1) + " " + std::to_string(c * 64) + "k 32k'";
      if (c % 3 == 0) io += " -c 'write -P " + std::to_string(c + 101) + " " + std::to_string(c * 64 + 40) + "k 8k'";
    }
    return qemu_image({"qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on IMG 4M", io + " IMG"});
  };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  run_kind(kind);
}

TEST_CASE("explorer: qcow2 refcount_bits=1", "[reliability][explorer]") {
  Kind kind{"qcow2 refcount-bits-1"};
  kind.make_disk = [] {
    auto create = geometry(4096);
    create.refcount_bits = 1;
    return engine_image(create);
  };
  kind.target = qcow2_target(2 * 4096);
  kind.config = config_for(4096, 80);
  run_kind(kind);
}

TEST_CASE("explorer: qcow2 refcount_bits=64", "[reliability][explorer]") {
  Kind kind{"qcow2 refcount-bits-64"};
  kind.make_disk = [] {
    auto create = geometry(65536);
    create.refcount_bits = 64;
    return engine_image(create);
  };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  run_kind(kind);
}

// Version 2: no zero flag, so zeroing deallocates.
TEST_CASE("explorer: qcow2 version 2", "[reliability][explorer]") {
  Kind kind{"qcow2 version-2"};
  kind.make_disk = [] {
    auto create = geometry(65536);
    create.version = 2;
    return engine_image(create);
  };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  run_kind(kind);
}

// qemu's internal snapshot shares most clusters (refcount 2, no COPIED
// flag): writes copy them. The snapshot's view must not change.
TEST_CASE("explorer: qcow2 with an internal snapshot", "[reliability][explorer]") {
  Kind kind{"qcow2 internal-snapshot"};
  kind.snapshot = "before";
  kind.make_disk = [] {
    return qemu_image({"qemu-img create -q -f qcow2 -o cluster_size=64k IMG 4M",
                       "qemu-io -f qcow2 -c 'write -P 33 0 1M' -c 'write -P 34 2M 512k' IMG",
                       "qemu-img snapshot -c before IMG",
                       "qemu-io -f qcow2 -c 'write -P 35 512k 128k' -c 'write -P 36 3M 64k' IMG"});
  };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  run_kind(kind);
}

// Compressed clusters to start with, and compressed writes among the
// operations: overwriting one allocates and copies its old contents.
TEST_CASE("explorer: qcow2 with compressed clusters", "[reliability][explorer]") {
  Kind kind{"qcow2 compressed"};
  kind.make_disk = [] { return engine_image(geometry(65536), true); };
  kind.target = qcow2_target();
  kind.config = config_for(65536);
  kind.config.compressed_writes = true;
  run_kind(kind);
}
