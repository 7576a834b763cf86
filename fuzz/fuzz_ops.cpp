// fuzz_ops: the input is a program. Its first bytes pick an image geometry;
// the rest drive a sequence of operations (write, write_zeroes, discard,
// compressed write, resize, flush, reopen, power cut, check) on a qcow2 image
// over a FaultyDevice, mirrored on a plain byte array. Every read must match
// the reference, check must never find corruption, and after a power cut
// every byte flushed before it must be intact.
#include <memory>
#include <set>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;

namespace {

constexpr uint64_t kSector = 512;
constexpr uint64_t kMaxSize = 512u << 10;  // small images keep every input fast
constexpr int kMaxOperations = 128;

// The reference: the guest's view now, what was last flushed, and which
// sectors may differ from the flushed state after a power cut.
struct Reference {
  std::vector<uint8_t> current, flushed;
  std::vector<bool> dirty;        // per sector, over kMaxSize
  std::set<uint64_t> sizes;       // every size since the last flush

  explicit Reference(uint64_t size)
      : current(size, 0), flushed(size, 0), dirty(kMaxSize / kSector, false), sizes{size} {}
  void touch(uint64_t offset, uint64_t length) {
    for (uint64_t s = offset / kSector; s < (offset + length + kSector - 1) / kSector && s < dirty.size(); ++s)
      dirty[s] = true;
  }
  // A FUA write is durable by itself (its sectors, not the rest): strict only
  // while no resize is pending, which would blur which sectors exist.
  void durable(uint64_t offset, uint64_t length) {
    if (sizes.size() != 1 || flushed.size() != current.size()) return;
    std::memcpy(flushed.data() + offset, current.data() + offset, length);
    for (uint64_t s = offset / kSector; s < (offset + length) / kSector; ++s) dirty[s] = false;
  }
  void flush() {
    flushed = current;
    std::fill(dirty.begin(), dirty.end(), false);
    sizes = {current.size()};
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
// since the last flush, and every sector flushed and not touched since is
// intact. Leaks are allowed and must repair. The reference then becomes
// whatever survived.
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
  const uint64_t min_size = *ref.sizes.begin();
  for (uint64_t s = 0; s < min_size / kSector; ++s) {
    if (ref.dirty[s]) continue;
    require(std::memcmp(now.data() + s * kSector, ref.flushed.data() + s * kSector, kSector) == 0,
            "flushed sector " + std::to_string(s) + " changed by a power cut");
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
        st = h.image->write(offset, bytes, {.fua = (what & 0x80) != 0});
        ref.touch(offset, length);
        if (st.ok()) std::memcpy(ref.current.data() + offset, bytes.data(), length);
        if (st.ok() && (what & 0x80)) ref.durable(offset, length);
        break;
      }
      case 3: {  // write_zeroes
        ZeroFlags flags{.may_trim = (what & 0x40) != 0, .fast_only = (what & 0x80) != 0};
        st = h.image->write_zeroes(offset, length, flags);
        ref.touch(offset, length);
        if (!st.ok() && flags.fast_only && st.error().code == ENOTSUP) st = {};
        else if (st.ok()) std::memset(ref.current.data() + offset, 0, length);
        break;
      }
      case 4:  // discard
        st = h.image->discard(offset, length);
        ref.touch(offset, length);
        if (st.ok()) std::memset(ref.current.data() + offset, 0, length);
        break;
      case 5: {  // compressed write of one cluster
        const uint64_t cluster = (offset / create.cluster_size) * create.cluster_size;
        const uint64_t n = std::min<uint64_t>(create.cluster_size, vsize - cluster);
        std::vector<uint8_t> bytes(n, 0);
        const uint8_t seed = in.u8();
        for (size_t i = 0; i < n / 3; ++i) bytes[i] = static_cast<uint8_t>(seed ^ (i / 5));
        st = h.image->write_compressed(cluster, bytes);
        ref.touch(cluster, n);
        if (!st.ok() && !have_codec && st.error().code == ENOTSUP) st = {};
        else if (st.ok()) std::memcpy(ref.current.data() + cluster, bytes.data(), n);
        break;
      }
      case 6: {  // resize: grow, or shrink with permission
        const uint64_t new_size = (1 + in.below(kMaxSize / kSector)) * kSector;
        ref.touch(std::min(vsize, new_size), kMaxSize);
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
