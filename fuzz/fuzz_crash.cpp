// fuzz_crash: the crash explorer (core/testing/crash_explorer.hpp) driven by
// the input instead of a seed. The input picks the kind of disk (qcow2
// geometries, a BlockCache, qcow2 over a BlockCache), then each guest
// thread's operations, the interleaving, and the crash points with their
// crash styles. The explorer's checks are the harness's: every crash state
// recovers without corruption and every sector holds a value the reference
// history accepts; reads are checked as they return; a clean close keeps
// everything.
//
// The interleaving is the input's (one operation at a time) unless the input
// asks for real threads, which only native builds have; the browser build
// (no threads) always runs the input's interleaving.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/codec.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/testing/crash_explorer.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;
using namespace qcowkit::testing;

namespace {

constexpr uint64_t kGuestSize = 512u << 10;  // small: every input stays fast
constexpr unsigned kMaxThreads = 4;
constexpr unsigned kMaxOperations = 64;
constexpr unsigned kMaxCrashPoints = 6;

struct Kind {
  const char* name;
  uint32_t cluster_size;   // 0: a raw disk under a BlockCache
  unsigned refcount_bits;
  int version;
  bool compressed;
  uint64_t metadata_cache_bytes;
  bool over_cache;         // qcow2 over a BlockCache
};

const Kind kKinds[] = {
    {"qcow2 64k", 65536, 16, 3, false, 32u << 20, false},
    {"qcow2 4k tiny cache", 4096, 16, 3, false, 2 * 4096, false},
    {"qcow2 512b", 512, 16, 3, false, 16 * 512, false},
    {"qcow2 refcount-bits-1", 4096, 1, 3, false, 2 * 4096, false},
    {"qcow2 refcount-bits-64", 65536, 64, 3, false, 32u << 20, false},
    {"qcow2 version 2", 65536, 16, 2, false, 32u << 20, false},
    {"qcow2 compressed", 65536, 16, 3, true, 32u << 20, false},
    {"blockcache", 0, 0, 0, false, 0, false},
    {"qcow2 over blockcache", 4096, 16, 3, false, 32u << 20, true},
};

BlockCacheOptions small_cache() {
  BlockCacheOptions options;
  options.max_size = 128u << 10;
  options.page_size = 4096;
  return options;
}

// The starting disk: a fresh image (or raw disk) with every fourth unit
// written, all of it durable.
std::vector<uint8_t> make_disk(const Kind& kind) {
  if (!kind.cluster_size) {
    std::vector<uint8_t> raw(kGuestSize, 0);
    for (uint64_t at = 0; at < kGuestSize; at += 4 * 4096)
      for (uint64_t s = at; s < at + 4096; s += kGuestSector) fill_sector(raw.data() + s, 0x7f000000u, s / kGuestSector);
    return raw;
  }
  auto disk = std::make_shared<MemoryDevice>(0);
  Qcow2CreateOptions create;
  create.size = kGuestSize;
  create.cluster_size = kind.cluster_size;
  create.refcount_bits = kind.refcount_bits;
  create.version = kind.version;
  auto image = Qcow2Image::create(disk, create);
  require_ok(image, std::string("create ") + kind.name);
  std::vector<uint8_t> data(kind.cluster_size);
  const uint64_t step = std::max<uint64_t>(4 * kind.cluster_size, 16u << 10);
  for (uint64_t at = 0; at + kind.cluster_size <= kGuestSize; at += step) {
    for (uint64_t s = 0; s < kind.cluster_size; s += kGuestSector)
      fill_sector(data.data() + s, 0x7f000001u, (at + s) / kGuestSector);
    require_ok(kind.compressed ? (*image)->write_compressed(at, data) : (*image)->write(at, data), "prefill");
  }
  require_ok((*image)->close(), "close after prefill");
  std::vector<uint8_t> bytes(disk->info().size);
  require_ok(disk->read(0, bytes), "read the image");
  return bytes;
}

std::unique_ptr<ExplorerTarget> make_target(const Kind& kind) {
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = kind.metadata_cache_bytes;
  if (!kind.cluster_size) return std::make_unique<CacheTarget>(small_cache());
  if (kind.over_cache) return std::make_unique<Qcow2OverCacheTarget>(small_cache(), options);
  return std::make_unique<Qcow2Target>(options);
}

GuestOp decode_op(ByteReader& in, unsigned thread, const Kind& kind) {
  GuestOp op;
  op.thread = thread;
  const uint8_t what = in.u8();
  const uint64_t unit = kind.cluster_size ? kind.cluster_size : 4096;
  const uint64_t sectors = kGuestSize / kGuestSector;
  switch (what % 8) {
    case 0: case 1: case 2: op.kind = GuestOpKind::write; break;
    case 3: op.kind = GuestOpKind::write_zeroes; break;
    case 4: op.kind = GuestOpKind::discard; break;
    case 5: op.kind = GuestOpKind::flush; return op;
    case 6: op.kind = GuestOpKind::read; break;
    default: op.kind = kind.compressed ? GuestOpKind::write_compressed : GuestOpKind::write; break;
  }
  if (op.kind == GuestOpKind::write_compressed || (what & 0x40)) {
    // Whole units: compressed clusters, and zeroing or freeing by metadata.
    op.offset = in.below(kGuestSize / unit) * unit;
    op.length = op.kind == GuestOpKind::write_compressed ? unit : unit * (1 + in.below(3));
  } else {
    op.offset = in.below(sectors) * kGuestSector;
    op.length = (1 + in.below(256)) * kGuestSector;  // up to 128 KiB
  }
  op.length = std::min(op.length, kGuestSize - op.offset);
  op.fua = (what & 0x80) != 0 && (op.kind == GuestOpKind::write || op.kind == GuestOpKind::write_zeroes);
  op.may_trim = (what & 0x20) != 0 && op.kind == GuestOpKind::write_zeroes;
  return op;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  const uint8_t header = in.u8();
  Kind kind = kKinds[(header & 0x7f) % (sizeof kKinds / sizeof kKinds[0])];
  // The browser build's replay driver has no deflate codec (the page brings
  // its own from JavaScript): there, compressed inputs run uncompressed.
  if (kind.compressed && !builtin_codecs().get(CompressionType::deflate)) kind.compressed = false;
  const bool threads = (header & 0x80) != 0;

  Program program;
  program.threads.resize(1 + in.below(kMaxThreads));
  const unsigned operations = in.below(kMaxOperations + 1);
  for (unsigned i = 0; i < operations && !in.empty(); ++i) {
    const unsigned thread = in.below(program.threads.size());
    program.threads[thread].push_back(decode_op(in, thread, kind));
    program.order.push_back(thread);  // the interleaving: in input order
  }
  const unsigned points = in.below(kMaxCrashPoints + 1);
  uint64_t event = 0;
  for (unsigned i = 0; i < points; ++i) {
    event += 1 + in.below(64);
    CrashPoint point{event, {}, in.u32()};
    const uint8_t styles = in.u8();
    for (int s = 0; s < kCrashStyles; ++s)
      if (styles >> s & 1) point.styles.push_back(static_cast<CrashStyle>(s));
    if (point.styles.empty()) point.styles.push_back(CrashStyle::random_torn);
    program.crash_points.push_back(point);
  }
  // 0: none; else before every 2nd, 4th or 8th device flush, one state each.
  const unsigned every = in.below(4);
  program.flush_crash_every = every ? 1u << every : 0;
  program.flush_crash_styles = 1;
#if QCOWKIT_HAVE_THREADS
  // Real threads (and pauses to let them overtake each other): the
  // interleaving is the scheduler's, so such inputs may not replay exactly.
  if (threads) {
    program.order.clear();
    program.jitter_seed = 1 + in.u32();
  }
#else
  (void)threads;
#endif

  auto target = make_target(kind);
  const ExplorerReport report = explore(*target, make_disk(kind), program);
  if (std::getenv("QCOWKIT_FUZZ_CRASH_VERBOSE"))  // what an input exercised
    std::fprintf(stderr, "%s: %llu operations, %llu device events, %llu crash states\n", kind.name,
                 static_cast<unsigned long long>(report.operations),
                 static_cast<unsigned long long>(report.device_events),
                 static_cast<unsigned long long>(report.crash_states));
  if (report.finding)
    fail(std::string("kind ") + kind.name + ", " + describe(program) + ": " + *report.finding);
  return 0;
}
