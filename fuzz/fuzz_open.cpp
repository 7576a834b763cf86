// fuzz_open: the input is a whole image file, so the header, every table and
// all the data are attacker-controlled. Probe it, open it read-only and go
// through everything a server or the browser would (read, extents, map,
// check), then open a copy read-write and write to it. Errors are fine; a
// crash, a hang, unbounded memory or corruption introduced by our own writes
// is a finding.
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;
using qcowkit::fuzz::require;

namespace {

// Bounds that keep one input fast whatever virtual size the header claims.
constexpr uint64_t kMaxBytesRead = 4u << 20;
constexpr uint64_t kChunk = 64u << 10;
constexpr int kMaxExtentCalls = 256;

std::shared_ptr<MemoryDevice> device_with(const uint8_t* data, size_t size) {
  auto dev = std::make_shared<MemoryDevice>(size);
  if (size) require(dev->write(0, ConstByteSpan(data, size)).ok(), "MemoryDevice write");
  return dev;
}

void read_around(Qcow2Image& image) {
  const uint64_t size = image.info().size;
  std::vector<uint8_t> buf(kChunk);
  // The start, then chunks spread over the whole virtual size, then the end.
  const uint64_t chunks = kMaxBytesRead / kChunk;
  for (uint64_t i = 0; i < chunks && size > 0; ++i) {
    uint64_t offset = i == 0 ? 0 : (size / chunks) * i;
    uint64_t length = std::min<uint64_t>(kChunk, size - offset);
    (void)image.read(offset, ByteSpan(buf.data(), length));
  }
  if (size > 0) (void)image.read(size - 1, ByteSpan(buf.data(), 1));
  // Out of range must fail, never read.
  require(!image.read(size, ByteSpan(buf.data(), 1)).ok(), "read past the end succeeded");
}

void walk_extents(Qcow2Image& image) {
  const uint64_t size = image.info().size;
  uint64_t pos = 0;
  for (int call = 0; call < kMaxExtentCalls && pos < size; ++call) {
    auto extents = image.extents(pos, size - pos);
    if (!extents.ok()) return;
    require(!extents->empty(), "extents() returned nothing");
    uint64_t expect = pos;
    for (const Extent& e : *extents) {
      require(e.offset == expect && e.length > 0, "extents are not contiguous and non-empty");
      expect += e.length;
    }
    require(expect <= size, "extents reach past the end");
    pos = expect;
  }
  auto mapped = image.map(0, std::min<uint64_t>(size, 64u << 20));
  (void)mapped;
}

void exercise_read_only(const uint8_t* data, size_t size) {
  auto dev = device_with(data, size);
  (void)Qcow2Image::looks_like_qcow2(*dev);
  auto probed = Qcow2Image::probe(*dev);
  (void)probed;
  Qcow2OpenOptions options;
  options.read_only = true;
  options.metadata_cache_bytes = 1u << 20;
  auto image = Qcow2Image::open(dev, options);
  if (!image.ok()) return;
  require(image.value()->info().read_only, "read-only open gave a writable image");
  read_around(**image);
  walk_extents(**image);
  (void)(*image)->details();
  (void)(*image)->check(RepairMode::none);
  std::vector<uint8_t> one(512, 0xaa);
  require(!(*image)->write(0, one).ok(), "write to a read-only image succeeded");
  (void)(*image)->close();
}

// Whether two guest clusters of the image's own layer name the same host
// cluster. qemu-img check calls such an image clean (the refcount counts
// both), but a write that gives one of them a new home leaves the other at
// refcount 1 without the COPIED flag, which check reports: QEMU's writes
// leave the same, and the only cost is a copy on that cluster's next
// write. (Looked at in the first 64 MiB, as read_around does.)
bool shares_clusters_within_layer(Qcow2Image& image) {
  const uint64_t cs = image.cluster_size();
  auto mapped = image.map(0, std::min<uint64_t>(image.info().size, 64u << 20));
  if (!mapped.ok()) return false;
  std::unordered_set<uint64_t> seen;
  for (const MapEntry& e : *mapped) {
    if (e.depth != 0 || !e.data || !e.host_offset) continue;
    for (uint64_t c = *e.host_offset / cs; c <= (*e.host_offset + e.length - 1) / cs; ++c)
      if (!seen.insert(c).second) return true;
  }
  return false;
}

// Check's findings other than a missing COPIED flag on a cluster left with
// one owner (see shares_clusters_within_layer).
uint64_t corruptions_besides_missing_copied(const CheckReport& report) {
  if (report.messages.size() < report.corruptions) return report.corruptions;  // cannot tell
  uint64_t missing_copied = 0;
  for (const std::string& m : report.messages)
    if (m.rfind("ERROR OFLAG_COPIED data cluster ", 0) == 0 && m.size() > 11 &&
        m.compare(m.size() - 11, 11, " refcount=1") == 0)
      ++missing_copied;
  return report.corruptions - std::min(missing_copied, report.corruptions);
}

// A writable open: a few writes where they are in range, a flush, and then
// check must not find anything our writes made worse than what was there.
void exercise_read_write(const uint8_t* data, size_t size) {
  auto dev = device_with(data, size);
  Qcow2OpenOptions options;
  options.metadata_cache_bytes = 1u << 20;
  auto image = Qcow2Image::open(dev, options);
  if (!image.ok()) return;
  Qcow2Image& img = **image;
  auto before = img.check(RepairMode::none);
  const bool was_clean = before.ok() && before->corruptions == 0 && before->check_errors == 0 &&
                         !img.is_corrupt();
  const bool shares = was_clean && shares_clusters_within_layer(img);
  const uint64_t vsize = img.info().size;
  std::vector<uint8_t> pattern(4096);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7 + 1);
  bool wrote = false;
  if (vsize >= pattern.size()) {
    const uint64_t spots[] = {0, (vsize / 2) & ~uint64_t{511}, vsize - pattern.size()};
    for (uint64_t at : spots) {
      if (!img.write(at, pattern).ok()) continue;
      wrote = true;
      std::vector<uint8_t> back(pattern.size());
      // A write that succeeded must read back, unless the image turned out
      // corrupt along the way (then reads may refuse).
      if (img.read(at, back).ok() && !img.is_corrupt() && was_clean)
        require(back == pattern, "data written to a clean image did not read back");
    }
    (void)img.write_zeroes(0, 4096, {.may_trim = true});
    (void)img.discard(vsize - 4096, 4096);
  }
  const bool flushed = img.flush().ok();
  if (was_clean && wrote && flushed && !img.is_corrupt()) {
    auto after = img.check(RepairMode::none);
    require(after.ok(), "check failed after writing to a clean image");
    const uint64_t corruptions = shares ? corruptions_besides_missing_copied(*after) : after->corruptions;
    require(corruptions == 0, "writes to a clean image left corruption: " +
                                  (after->messages.empty() ? std::string() : after->messages[0]));
  }
  (void)img.check(RepairMode::all);
  (void)img.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4u << 20)) return 0;  // bigger files explore nothing new
  exercise_read_only(data, size);
  exercise_read_write(data, size);
  return 0;
}
