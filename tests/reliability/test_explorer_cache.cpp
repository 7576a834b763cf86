// The crash explorer over a BlockCache alone (the disk is the guest's
// bytes) and under a qcow2 image. The cache is small, so write-back runs
// under the threads (cache full) as well as on flush. A third kind keeps the
// default options: over the fast disk most writes then go around the cache
// while others are cached and written back.
#include "crash_explorer.hpp"
#include "qcowkit/block_cache.hpp"

using namespace qcowkit;
using namespace qcowkit::explorer;

namespace {

// Writes stay cached until the cache is full (the in-memory disk is fast,
// so by default most would go around the cache once write-back timed it).
BlockCacheOptions small_cache() {
  BlockCacheOptions options;
  options.max_size = 256u << 10;
  options.page_size = 4096;
  options.write_around_fast_device = false;
  return options;
}

}  // namespace

TEST_CASE("explorer: BlockCache over a disk", "[reliability][explorer][cache]") {
  Kind kind{"blockcache"};
  kind.qcow2 = false;
  kind.make_disk = [] { return raw_disk(4u << 20); };
  kind.target = std::make_shared<CacheTarget>(small_cache());
  kind.config.unit = 4096;
  kind.config.crash_points = 16;
  kind.config.crash_spacing = 30;
  run_kind(kind);
}

TEST_CASE("explorer: qcow2 over a BlockCache", "[reliability][explorer][cache]") {
  Kind kind{"qcow2 over blockcache"};
  kind.make_disk = [] {
    Qcow2CreateOptions create;
    create.size = 4u << 20;
    create.cluster_size = 4096;
    return engine_image(create);
  };
  kind.target = std::make_shared<Qcow2OverCacheTarget>(small_cache());
  kind.config.unit = 4096;
  kind.config.crash_points = 16;
  kind.config.crash_spacing = 60;
  run_kind(kind);
}

TEST_CASE("explorer: BlockCache writing around a fast disk", "[reliability][explorer][cache]") {
  Kind kind{"blockcache writing around"};
  kind.qcow2 = false;
  kind.make_disk = [] { return raw_disk(4u << 20); };
  BlockCacheOptions options = small_cache();
  options.write_around_fast_device = true;
  kind.target = std::make_shared<CacheTarget>(options);
  kind.config.unit = 4096;
  kind.config.crash_points = 16;
  kind.config.crash_spacing = 30;
  run_kind(kind);
}
