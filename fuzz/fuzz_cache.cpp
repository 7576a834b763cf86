// fuzz_cache: the input picks BlockCache options (page size, memory bound,
// policy, read caching, extent mode, write-back parallelism) and then drives
// writes, reads, zeroes, discards, flushes, extent queries, resizes, injected
// I/O errors and power cuts against a BlockCache over a FaultyDevice over a
// MemoryDevice, mirrored on a byte array. Reads must match; extents must be
// contiguous and never call data zero; the cache must stay within its memory
// bound; after a power cut everything flushed is intact; after an injected
// error nothing acknowledged is lost once a later flush succeeds.
#include <memory>
#include <set>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/block_cache.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;

namespace {

constexpr uint64_t kSector = 512;
constexpr uint64_t kMaxSize = 1u << 20;
constexpr int kMaxOperations = 160;

struct Reference {
  std::vector<uint8_t> current, flushed;
  std::vector<bool> dirty, unknown;  // per sector (of kMaxSize)
  std::set<uint64_t> sizes;

  explicit Reference(uint64_t size)
      : current(size, 0), flushed(size, 0), dirty(kMaxSize / kSector), unknown(kMaxSize / kSector), sizes{size} {}
  void mark(std::vector<bool>& v, uint64_t offset, uint64_t length) {
    for (uint64_t s = offset / kSector; s < (offset + length + kSector - 1) / kSector && s < v.size(); ++s) v[s] = true;
  }
  void known(uint64_t offset, uint64_t length) {
    for (uint64_t s = offset / kSector; s < (offset + length) / kSector && s < unknown.size(); ++s) unknown[s] = false;
  }
  void flush() {
    flushed = current;
    std::fill(dirty.begin(), dirty.end(), false);
    sizes = {current.size()};
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  BlockCacheOptions options;
  const uint8_t a = in.u8(), b = in.u8();
  options.page_size = 512u << (a % 8);                       // 512 B .. 64 KiB
  options.max_size = options.page_size * (16 + in.below(48));  // few pages: write-back under pressure
  options.policy = static_cast<CachePolicy>((a >> 3) % 3);
  options.cache_reads = (a >> 5) & 1;
  options.write_around_fast_device = (a >> 6) & 1;
  options.extents = static_cast<ExtentMode>(b % 3);
  options.scan_block = options.page_size << (b >> 2 & 3);
  options.writeback_parallelism = 1 + (b >> 4 & 3);
  options.max_writeback_bytes = options.page_size << (b >> 6);
  const uint64_t initial = (1 + in.below(kMaxSize / kSector)) * kSector;

  auto disk = std::make_shared<MemoryDevice>(initial, kSector);
  auto faulty = std::make_shared<FaultyDevice>(disk);
  require_ok(faulty->flush(), "flush the empty device");
  auto made = BlockCache::create(faulty, options);
  if (!made.ok()) return 0;  // options the cache refuses (it said why)
  std::unique_ptr<BlockCache> cache = std::move(*made);
  Reference ref(initial);
  const bool flush_is_durable = options.policy != CachePolicy::unsafe;

  auto reopen_after_cut = [&] {
    cache.reset();  // its write-back fails: no power
    faulty->revive();
    faulty->clear_faults();
    auto again = BlockCache::create(faulty, options);
    require_ok(again, "a new cache after a power cut");
    cache = std::move(*again);
    const uint64_t now_size = cache->info().size;
    require(ref.sizes.count(now_size), "size after a power cut is none the device had");
    std::vector<uint8_t> now(now_size);
    require_ok(cache->read(0, now), "read after a power cut");
    const uint64_t min_size = *ref.sizes.begin();
    for (uint64_t s = 0; s < min_size / kSector; ++s) {
      if (ref.dirty[s] || ref.unknown[s]) continue;
      require(std::memcmp(now.data() + s * kSector, ref.flushed.data() + s * kSector, kSector) == 0,
              "flushed sector " + std::to_string(s) + " lost in a power cut");
    }
    ref.current = now;
    std::fill(ref.unknown.begin(), ref.unknown.end(), false);
    ref.flush();
  };

  for (int op = 0; op < kMaxOperations && !in.empty(); ++op) {
    const uint64_t vsize = ref.current.size();
    const uint8_t what = in.u8();
    const uint64_t offset = in.below(vsize / kSector) * kSector;
    const uint64_t length = std::min<uint64_t>(vsize - offset, (1 + in.below(4 * options.page_size / kSector)) * kSector);
    Status st;
    switch (what % 11) {
      case 0: case 1: case 2: {
        std::vector<uint8_t> bytes(length);
        const uint8_t seed = in.u8();
        for (size_t i = 0; i < length; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 29 + (i >> 9));
        const bool fua = what & 0x80;
        ref.mark(ref.dirty, offset, length);
        st = cache->write(offset, bytes, {.fua = fua});
        if (st.ok()) {
          std::memcpy(ref.current.data() + offset, bytes.data(), length);
          ref.known(offset, length);
        } else {
          ref.mark(ref.unknown, offset, length);
        }
        break;
      }
      case 3: case 4: {
        const bool discard = what % 11 == 4;
        ref.mark(ref.dirty, offset, length);
        st = discard ? cache->discard(offset, length)
                     : cache->write_zeroes(offset, length, {.may_trim = (what & 0x40) != 0});
        if (st.ok()) {
          std::memset(ref.current.data() + offset, 0, length);
          ref.known(offset, length);
        } else {
          ref.mark(ref.unknown, offset, length);
        }
        break;
      }
      case 5:
        st = cache->flush();
        if (st.ok() && flush_is_durable) ref.flush();
        break;
      case 6: {  // extents: contiguous, and nothing called zero holds data
        auto extents = cache->extents(offset, length);
        if (!extents.ok()) { st = std::move(extents).error(); break; }
        require(!extents->empty(), "extents() returned nothing");
        uint64_t expect = offset;
        for (const Extent& e : *extents) {
          require(e.offset == expect && e.length > 0 && e.offset + e.length <= offset + length,
                  "extents are not contiguous inside the range");
          if (e.kind != ExtentKind::data) {
            for (uint64_t s = e.offset / kSector; s < (e.offset + e.length) / kSector; ++s)
              require(ref.unknown[s] || is_all_zero(ConstByteSpan(ref.current.data() + s * kSector, kSector)),
                      "extents call a range with data zero at sector " + std::to_string(s));
          }
          expect += e.length;
        }
        break;
      }
      case 7: {  // resize
        const uint64_t new_size = (1 + in.below(kMaxSize / kSector)) * kSector;
        ref.mark(ref.dirty, std::min(vsize, new_size), kMaxSize);
        ref.sizes.insert(new_size);
        st = cache->resize(new_size);
        if (st.ok()) ref.current.resize(new_size, 0);
        break;
      }
      case 8: {  // a one-shot I/O error somewhere in the next device operations
        faulty->fail_nth(1 + in.below(8), (what & 0x80) ? ENOSPC : EIO, FaultOp::mutating);
        break;
      }
      case 9: {  // power cut, now
        faulty->clear_faults();
        faulty->power_cut((what & 0x80) ? 0.5 : 0.0, in.u32());
        reopen_after_cut();
        break;
      }
      default: {
        std::vector<uint8_t> back(length);
        st = cache->read(offset, back);
        if (st.ok()) {
          for (uint64_t s = offset / kSector; s < (offset + length) / kSector; ++s)
            require(ref.unknown[s] || std::memcmp(back.data() + (s * kSector - offset),
                                                  ref.current.data() + s * kSector, kSector) == 0,
                    "read differs from the reference at sector " + std::to_string(s));
        }
        break;
      }
    }
    require(cache->stats().peak_memory_bytes <= options.max_size, "the cache went past its memory bound");
    if (!st.ok()) require(!st.error().message.empty(), "an error without a message");
  }
  // The fault is one-shot: a final flush must succeed and keep everything.
  faulty->clear_faults();
  require_ok(cache->write_back_all(), "final write-back");
  std::vector<uint8_t> now(ref.current.size());
  require(cache->info().size == ref.current.size(), "size differs at the end");
  require_ok(cache->read(0, now), "final read");
  for (uint64_t s = 0; s < now.size() / kSector; ++s)
    require(ref.unknown[s] || std::memcmp(now.data() + s * kSector, ref.current.data() + s * kSector, kSector) == 0,
            "data lost at sector " + std::to_string(s));
  // What the device holds is what the guest saw (close would close it too).
  std::vector<uint8_t> durable(disk->info().size);
  require_ok(disk->read(0, durable), "read the device");
  require(durable.size() == now.size(), "the device's size differs from the cache's after write-back");
  for (uint64_t s = 0; s < now.size() / kSector; ++s)
    require(std::memcmp(durable.data() + s * kSector, now.data() + s * kSector, kSector) == 0,
            "the device differs from the cache after write-back at sector " + std::to_string(s));
  require_ok(cache->close(), "close");
  return 0;
}
