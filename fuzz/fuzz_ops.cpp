// fuzz_ops: the input is a program. Its first bytes pick an image geometry;
// the rest drive a sequence of operations (write, write_zeroes, discard,
// compressed write, resize, flush, reopen, power cut, check) on a qcow2 image
// over a FaultyDevice, mirrored on a plain byte array. Every read must match
// the reference, check must never find corruption, and after a power cut
// every sector must hold its value at the last flush or one of the values
// written to it since: nothing else (not zeroes, not another offset's data).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <set>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;

namespace {

constexpr uint64_t kSector = 512;
constexpr uint64_t kMaxSize = 512u << 10;  // small images keep every input fast
constexpr int kMaxOperations = 128;

uint64_t sector_hash(const uint8_t* bytes) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (uint64_t i = 0; i < kSector; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    h ^= word + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
  }
  return h;
}

// The reference: the guest's view now, what was last flushed, and per sector
// the hashes of every value written to it since (a power cut may leave any of
// those, or the flushed value, and nothing else). The same rule as
// tests/unit/crash_candidates.hpp, kept here so the harness stands alone.
struct Reference {
  std::vector<uint8_t> current, flushed;
  std::unordered_map<uint64_t, std::vector<uint64_t>> since;  // sector -> value hashes
  std::set<uint64_t> sizes;       // every size since the last flush

  explicit Reference(uint64_t size) : current(size, 0), flushed(size, 0), sizes{size} {}
  // Before an operation writes `data` (nullptr: zeroes) over [offset, offset +
  // length), whether it succeeds or not. Bytes past the current size (a resize)
  // count as zeroes.
  void touch(uint64_t offset, uint64_t length, const uint8_t* data) {
    uint8_t bytes[kSector];
    const uint64_t end = std::min<uint64_t>(offset + length, kMaxSize);
    for (uint64_t s = offset / kSector; s * kSector < end; ++s) {
      for (uint64_t i = 0; i < kSector; ++i) {
        const uint64_t at = s * kSector + i;
        bytes[i] = at >= offset && at < end ? (data ? data[at - offset] : 0) : at < current.size() ? current[at] : 0;
      }
      auto& set = since[s];
      const uint64_t h = sector_hash(bytes);
      if (std::find(set.begin(), set.end(), h) == set.end()) set.push_back(h);
    }
  }
  // A FUA write is durable by itself (its sectors, not the rest): strict only
  // while no resize is pending, which would blur which sectors exist.
  void durable(uint64_t offset, uint64_t length) {
    if (sizes.size() != 1 || flushed.size() != current.size()) return;
    std::memcpy(flushed.data() + offset, current.data() + offset, length);
    for (uint64_t s = offset / kSector; s < (offset + length) / kSector; ++s) since.erase(s);
  }
  void flush() {
    flushed = current;
    since.clear();
    sizes = {current.size()};
  }
  // Whether sector s may read `now` after a power cut.
  bool allows(uint64_t s, const uint8_t* now) const {
    uint8_t was[kSector] = {};
    if ((s + 1) * kSector <= flushed.size()) std::memcpy(was, flushed.data() + s * kSector, kSector);
    if (std::memcmp(now, was, kSector) == 0) return true;
    auto it = since.find(s);
    if (it == since.end()) return false;
    return std::find(it->second.begin(), it->second.end(), sector_hash(now)) != it->second.end();
  }
};

struct Harness {
  std::shared_ptr<MemoryDevice> disk = std::make_shared<MemoryDevice>(0);
  std::shared_ptr<FaultyDevice> faulty = std::make_shared<FaultyDevice>(disk);
  std::unique_ptr<Qcow2Image> image;
  uint64_t cache_bytes = 0;

  Status try_open() {
    Qcow2OpenOptions options;
    options.metadata_cache_bytes = cache_bytes;
    auto opened = Qcow2Image::open(faulty, options);
    if (!opened.ok()) return std::move(opened).error();
    image = std::move(*opened);
    return {};
  }
  void open() { require_ok(try_open(), "reopen"); }
};

void verify_clean(Qcow2Image& image, const char* when) {
  auto report = image.check(RepairMode::none);
  require_ok(report, std::string("check ") + when);
  require(report->corruptions == 0 && report->check_errors == 0,
          std::string("check ") + when + " found corruption: " +
              (report->messages.empty() ? std::string() : report->messages[0]));
}

void verify_contents(Qcow2Image& image, const std::vector<uint8_t>& expected, const char* when) {
  require(image.info().size == expected.size(), std::string("size differs ") + when);
  std::vector<uint8_t> now(expected.size());
  require_ok(image.read(0, now), std::string("read everything ") + when);
  if (now != expected) {
    size_t at = 0;
    while (now[at] == expected[at]) ++at;
    fail(std::string("contents differ ") + when + " at byte " + std::to_string(at));
  }
}

// After a cut: the image opens, has no corruption, is one of the sizes it had
// since the last flush, and every sector holds its flushed value (zeroes past
// the flushed size) or one written to it since. Leaks are allowed and must
// repair. The reference then becomes whatever survived.
void recover_after_cut(Harness& h, Reference& ref) {
  h.image.reset();  // closing fails quietly: there is no power
  h.faulty->revive();
  h.faulty->clear_faults();
  h.open();
  verify_clean(*h.image, "after a power cut");
  const uint64_t size = h.image->info().size;
  require(ref.sizes.count(size), "size after a power cut is none the image ever had: " + std::to_string(size));
  std::vector<uint8_t> now(size);
  require_ok(h.image->read(0, now), "read after a power cut");
  for (uint64_t s = 0; s < size / kSector; ++s) {
    if (ref.allows(s, now.data() + s * kSector)) continue;
    bool zero = true;
    for (uint64_t i = 0; i < kSector && zero; ++i) zero = now[s * kSector + i] == 0;
    fail("after a power cut sector " + std::to_string(s) + " reads " + (zero ? "zeroes" : "data") +
         " that is neither its flushed value nor one written to it since");
  }
  auto repaired = h.image->check(RepairMode::leaks);
  require_ok(repaired, "repair leaks after a power cut");
  require(repaired->corruptions == 0, "repair after a power cut left corruption");
  verify_clean(*h.image, "after repairing a power cut");
  ref.current = now;
  require_ok(h.image->flush(), "flush after recovery");
  ref.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader in(data, size);
  static const uint32_t kClusterSizes[] = {512, 4096, 16384, 65536};
  static const unsigned kRefcountBits[] = {1, 2, 8, 16, 64};

  Qcow2CreateOptions create;
  const uint8_t geometry = in.u8();
  create.cluster_size = kClusterSizes[geometry & 3];
  create.version = (geometry >> 2) & 1 ? 2 : 3;
  create.refcount_bits = create.version == 2 ? 16 : kRefcountBits[((geometry >> 3) & 7) % 5];
  create.extended_l2 = create.version == 3 && create.cluster_size >= 16384 && (geometry >> 6) & 1;
  create.lazy_refcounts = create.version == 3 && (geometry >> 7) & 1;
  create.compression_type =
      create.version == 3 && in.u8() & 1 ? CompressionType::zstd : CompressionType::deflate;
  create.size = (1 + in.below(kMaxSize / kSector)) * kSector;

  Harness h;
  h.cache_bytes = create.cluster_size * (2 + in.below(8));  // small: evictions happen
  {
    auto made = Qcow2Image::create(h.faulty, create);
    require_ok(made, "create");
    h.image = std::move(*made);
    require_ok(h.image->flush(), "flush after create");
  }
  Reference ref(create.size);
  const bool have_codec = builtin_codecs().get(create.compression_type) != nullptr;

  for (int op = 0; op < kMaxOperations && !in.empty(); ++op) {
    const uint64_t vsize = ref.current.size();
    const uint8_t what = in.u8();
    const uint64_t offset = in.below(vsize / kSector) * kSector;
    const uint64_t length = std::min<uint64_t>(vsize - offset, (1 + in.below(3 * create.cluster_size / kSector)) * kSector);
    Status st;
    bool mutates = true;
    switch (what % 12) {
      case 0: case 1: case 2: {  // write
        std::vector<uint8_t> bytes(length);
        const uint8_t seed = in.u8();
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(seed + i * 13 + (i >> 9));
        ref.touch(offset, length, bytes.data());
        st = h.image->write(offset, bytes, {.fua = (what & 0x80) != 0});
        if (st.ok()) std::memcpy(ref.current.data() + offset, bytes.data(), length);
        if (st.ok() && (what & 0x80)) ref.durable(offset, length);
        break;
      }
      case 3: {  // write_zeroes
        ZeroFlags flags{.may_trim = (what & 0x40) != 0, .fast_only = (what & 0x80) != 0};
        ref.touch(offset, length, nullptr);
        st = h.image->write_zeroes(offset, length, flags);
        if (!st.ok() && flags.fast_only && st.error().code == ENOTSUP) st = {};
        else if (st.ok()) std::memset(ref.current.data() + offset, 0, length);
        break;
      }
      case 4:  // discard
        ref.touch(offset, length, nullptr);
        st = h.image->discard(offset, length);
        if (st.ok()) std::memset(ref.current.data() + offset, 0, length);
        break;
      case 5: {  // compressed write of one cluster
        const uint64_t cluster = (offset / create.cluster_size) * create.cluster_size;
        const uint64_t n = std::min<uint64_t>(create.cluster_size, vsize - cluster);
        std::vector<uint8_t> bytes(n, 0);
        const uint8_t seed = in.u8();
        for (size_t i = 0; i < n / 3; ++i) bytes[i] = static_cast<uint8_t>(seed ^ (i / 5));
        ref.touch(cluster, n, bytes.data());
        st = h.image->write_compressed(cluster, bytes);
        if (!st.ok() && !have_codec && st.error().code == ENOTSUP) st = {};
        else if (st.ok()) std::memcpy(ref.current.data() + cluster, bytes.data(), n);
        break;
      }
      case 6: {  // resize: grow, or shrink with permission
        const uint64_t new_size = (1 + in.below(kMaxSize / kSector)) * kSector;
        ref.touch(std::min(vsize, new_size), kMaxSize, nullptr);  // cut off or grown: zeroes
        ref.sizes.insert(new_size);  // a resize cut short may still have reached the disk
        st = h.image->resize(new_size, true);
        if (st.ok()) ref.current.resize(new_size, 0);
        break;
      }
      case 7:  // flush
        st = h.image->flush();
        mutates = false;
        if (st.ok()) ref.flush();
        break;
      case 8:  // reopen: a clean close must keep everything
        mutates = false;
        st = h.image->close();
        if (st.ok()) {
          ref.flush();
          st = h.try_open();  // may meet a pending power cut
          if (st.ok()) verify_contents(*h.image, ref.current, "after reopening");
        }
        break;
      case 9: {  // power cut: now, or in the middle of one of the next operations
        mutates = false;
        if (what & 0x80) {
          h.faulty->cut_power_after(in.below(16));
        } else {
          const uint8_t keep = in.u8();
          h.faulty->power_cut(keep & 1 ? (keep >> 1) / 128.0 : 0.0, in.u32());
          recover_after_cut(h, ref);
          verify_contents(*h.image, ref.current, "after recovering");
        }
        break;
      }
      case 10: {  // check (it may meet a pending power cut, like anything else)
        mutates = false;
        auto report = h.image->check(RepairMode::none);
        if (!report.ok()) {
          st = std::move(report).error();
          break;
        }
        require(report->corruptions == 0 && report->check_errors == 0,
                "check between operations found corruption: " +
                    (report->messages.empty() ? std::string() : report->messages[0]));
        break;
      }
      default: {  // read and compare
        mutates = false;
        std::vector<uint8_t> back(length);
        st = h.image->read(offset, back);
        if (st.ok())
          require(std::memcmp(back.data(), ref.current.data() + offset, length) == 0,
                  "read at " + std::to_string(offset) + "+" + std::to_string(length) + " differs from the reference");
        break;
      }
    }
    (void)mutates;
    if (st.ok()) continue;
    // The only failure a valid request may meet is the power going out.
    if (h.faulty->powered()) fail("operation " + std::to_string(what % 12) + " failed: " + st.error().message);
    recover_after_cut(h, ref);
  }
  if (!h.faulty->powered()) recover_after_cut(h, ref);
  h.faulty->clear_faults();
  require_ok(h.image->flush(), "final flush");
  verify_clean(*h.image, "at the end");
  verify_contents(*h.image, ref.current, "at the end");
  require_ok(h.image->close(), "final close");
  return 0;
}
