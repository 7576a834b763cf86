// Qcow2Image: a qcow2 image as a BlockDevice, stored on another BlockDevice.
//
//   auto file = FileDevice::open("disk.qcow2", {.read_only = true});
//   if (!file.ok()) return file.error();
//   Qcow2OpenOptions options;
//   options.read_only = true;
//   auto image = Qcow2Image::open(std::move(*file), options);
//   if (!image.ok()) return image.error();
//   std::vector<uint8_t> buffer(4096);
//   Status st = (*image)->read(0, buffer);
//
// (tests/unit/docs/test_header_examples.cpp compiles and runs this.)
//
// Ownership: the image shares the device it lies on (and any backing or
// data file passed in) and never closes them: close() flushes and ends the
// image; the caller closes the file. Thread safety: every method may be
// called from many threads at once (see docs/architecture.md, locking).
//
// Supports versions 2 and 3, cluster sizes 512 B to 2 MiB, refcount widths
// 1 to 64 bits, zero clusters, compressed clusters (deflate, zstd), extended
// L2, lazy refcounts, internal snapshots (created, applied, deleted, or
// opened read-only) and persistent dirty bitmaps (enabled ones record every
// write, marked in use while the image is open for writing and consistent
// again after a clean close; bitmaps it cannot maintain are marked
// inconsistent on the first write, as the spec requires; added, removed,
// cleared, enabled, disabled and merged on request, crash-safe). Refuses
// encryption, unknown incompatible features and structurally invalid images
// with an error saying which. Never opens a file named inside the image: a
// backing file or external data file is used only when the caller passes it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/block_device.hpp"
#include "qcowkit/codec.hpp"

namespace qcowkit {

enum class Preallocation { off, metadata, falloc, full };

struct Qcow2CreateOptions {
  uint64_t size = 0;               // virtual size in bytes
  int version = 3;                 // 2 (compat=0.10) or 3 (compat=1.1)
  uint32_t cluster_size = 65536;   // power of two, 512 .. 2 MiB
  unsigned refcount_bits = 16;     // 1, 2, 4, 8, 16, 32 or 64 (v2: 16 only)
  bool lazy_refcounts = false;     // v3 only
  bool extended_l2 = false;        // v3 only, cluster_size >= 16 KiB
  Preallocation preallocation = Preallocation::off;
  CompressionType compression_type = CompressionType::deflate;
  std::string backing_file;        // recorded in the header, never opened
  std::string backing_format;      // e.g. "raw" or "qcow2"
};

struct Qcow2OpenOptions {
  bool read_only = false;
  // Unallocated ranges read from here (it must be at least as large as the
  // range read; beyond its end reads are zeroes). nullptr: they read as zero.
  std::shared_ptr<BlockDevice> backing;
  // The external data file, for images that use one; required to open them.
  std::shared_ptr<BlockDevice> data_file;
  uint64_t metadata_cache_bytes = 32u << 20;  // bound on cached L2 and refcount blocks
  // Serve an internal snapshot (by ID, then name) instead of the active
  // layer: the image reads as the snapshot did, at its virtual size. Needs
  // read_only; ENOENT when there is no such snapshot.
  std::string snapshot;
  const CodecSet* codecs = nullptr;           // nullptr: builtin_codecs()
};

struct Qcow2Snapshot {
  std::string id, name;
  uint64_t virtual_size = 0;
  uint64_t vm_state_size = 0;
  uint32_t date_sec = 0, date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t icount = UINT64_MAX;  // UINT64_MAX: not recorded
};

struct Qcow2Bitmap {
  std::string name;
  uint32_t granularity_bits = 0;
  uint32_t flags = 0;  // bit 0 in use, bit 1 auto, bit 2 extra data compatible
};

// What the header says (qemu-img info's "format specific" part and more).
struct Qcow2Details {
  int version = 3;
  uint64_t virtual_size = 0;
  uint32_t cluster_size = 0;
  unsigned refcount_bits = 16;
  bool dirty = false;             // incompatible bit 0
  bool corrupt = false;           // incompatible bit 1
  bool lazy_refcounts = false;    // compatible bit 0
  bool extended_l2 = false;       // incompatible bit 4
  bool bitmaps_consistent = false;// autoclear bit 0
  CompressionType compression_type = CompressionType::deflate;
  std::string backing_file, backing_format;
  std::string data_file;          // external data file name, if any
  bool data_file_raw = false;     // autoclear bit 1
  std::vector<Qcow2Snapshot> snapshots;
  std::vector<Qcow2Bitmap> bitmaps;
  uint64_t incompatible_features = 0, compatible_features = 0, autoclear_features = 0;
};

// One run of the guest address space, as `qemu-img map --output=json` has it.
struct MapEntry {
  uint64_t offset = 0, length = 0;
  bool present = false;     // allocated (data or zero) in this image or the backing file
  bool data = false;        // allocated with data (in this image or the backing file)
  bool zero = false;        // reads as zeroes
  bool compressed = false;
  int depth = 0;            // 0: this image; 1: the backing file
  std::optional<uint64_t> host_offset;  // where the data lies in the file (not for compressed)
};

enum class RepairMode { none, leaks, all };

// As `qemu-img check` reports it.
struct CheckReport {
  uint64_t corruptions = 0, leaks = 0, check_errors = 0;
  uint64_t corruptions_fixed = 0, leaks_fixed = 0;
  uint64_t image_end_offset = 0;
  uint64_t total_clusters = 0, allocated_clusters = 0;
  uint64_t fragmented_clusters = 0, compressed_clusters = 0;
  std::vector<std::string> messages;  // one line per problem (the first few hundred)
};

class Qcow2Image final : public BlockDevice {
 public:
  // Writes a new image onto `file` (which is truncated) and opens it.
  static Result<std::unique_ptr<Qcow2Image>> create(std::shared_ptr<BlockDevice> file,
                                                    const Qcow2CreateOptions& create,
                                                    const Qcow2OpenOptions& open = {});
  static Result<std::unique_ptr<Qcow2Image>> open(std::shared_ptr<BlockDevice> file,
                                                  const Qcow2OpenOptions& options = {});
  // Reads and validates only the header and its extensions: enough to learn
  // the backing file name or the feature bits before opening for real.
  static Result<Qcow2Details> probe(BlockDevice& file);
  // True when the device starts with the qcow2 magic.
  static bool looks_like_qcow2(BlockDevice& file);

  ~Qcow2Image() override;

  DeviceInfo info() const override;
  Status read(uint64_t offset, ByteSpan buffer) override;
  Status write(uint64_t offset, ConstByteSpan data, WriteFlags flags = {}) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t length) override;
  Status write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags = {}) override;
  Status resize(uint64_t new_size) override;  // grows; shrinking needs resize(size, true)
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override;
  Status close() override;

  Status resize(uint64_t new_size, bool allow_shrink);

  // Stores one cluster compressed (offset cluster aligned, data one cluster or
  // the short last one); falls back to a plain write when it does not shrink.
  Status write_compressed(uint64_t offset, ConstByteSpan data);

  // The second half of write_compressed, for callers that compress on threads
  // of their own and store in order: `packed` is one cluster (zero-padded if
  // it is the short last one) already compressed with this image's codec
  // (details().compression_type, as Codec::compress makes it), 1 to
  // cluster_size() - 1 bytes, stored for the cluster at `offset`.
  Status store_compressed(uint64_t offset, ConstByteSpan packed);

  // Guest-to-host mapping with host offsets, for `map`.
  Result<std::vector<MapEntry>> map(uint64_t offset, uint64_t length);

  // Checks refcounts against the references; repairs when asked (needs a
  // read-write image). `qemu-img check` semantics.
  Result<CheckReport> check(RepairMode repair = RepairMode::none);

  // Moves clusters from the end of the file into free space and truncates.
  Status compact();

  // Internal snapshots, as `qemu-img snapshot -c/-d/-a`. Each waits for the
  // requests in flight and runs alone; a power cut at any point leaves the
  // old or the new snapshot table (at worst with leaked clusters). create
  // gives the snapshot the next free numeric ID; delete and apply take an ID
  // or a name (IDs first) and fail with ENOENT when there is none. apply
  // needs the snapshot to have the image's current virtual size.
  Status create_snapshot(const std::string& name);
  Status delete_snapshot(const std::string& id_or_name);
  Status apply_snapshot(const std::string& id_or_name);

  // What the persistent bitmap `name` marks dirty, as on disk: contiguous
  // extents from 0 to the virtual size, `data` for dirty runs (whole
  // granules) and `hole` for clean ones. ENOENT for an unknown bitmap,
  // EINVAL for one marked in use (inconsistent after an unclean close).
  Result<std::vector<Extent>> bitmap_ranges(const std::string& name);

  // Persistent dirty bitmaps, as `qemu-img bitmap`. Each change waits for
  // the requests in flight and runs alone; a power cut at any point leaves
  // the old or the new bitmap directory (at worst with leaked clusters).
  // Errors: ENOTSUP on a v2 (compat=0.10) image, ENOENT for an unknown
  // bitmap, EEXIST for a name in use, EINVAL for a name of 0 or more than
  // 1023 bytes, a granularity that is not a power of two from 512 B to
  // 2 GiB (0: QEMU's default, the cluster size within 4 KiB..64 KiB), or a
  // bitmap marked in use (inconsistent; it can only be removed), EFBIG past
  // 65535 bitmaps. Nothing changes on disk when a call fails.
  Status add_bitmap(const std::string& name, uint64_t granularity = 0, bool enabled = true);
  Status remove_bitmap(const std::string& name);
  Status clear_bitmap(const std::string& name);                    // every granule clean
  Status enable_bitmap(const std::string& name, bool enabled);     // records writes or not
  // target |= source, both in this image.
  Status merge_bitmap(const std::string& target, const std::string& source);
  // target |= the dirty `data` extents of a bitmap of another image of
  // `source_size` bytes (as bitmap_ranges() gives them); EINVAL unless the
  // sizes agree.
  Status merge_bitmap_ranges(const std::string& target, const std::vector<Extent>& source,
                             uint64_t source_size);

  // Records another backing file (as `qemu-img rebase -u`): the name and
  // format go into the header in one write, after everything written so far
  // is durable; an empty name makes the image standalone. From then on
  // unallocated ranges read from `backing` (nullptr: zeroes). The name is
  // recorded, never opened. EINVAL for a name over 1023 bytes, ENOSPC when
  // the header would outgrow the first cluster.
  Status set_backing_file(const std::string& name, const std::string& format,
                          std::shared_ptr<BlockDevice> backing);

  // True when zeroing [offset, offset + length) needs metadata updates only.
  bool can_zero_fast(uint64_t offset, uint64_t length);

  Qcow2Details details() const;
  uint32_t cluster_size() const;
  bool is_corrupt() const;  // the corrupt bit is set (in the file or since open)

  class Impl;

 private:
  explicit Qcow2Image(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qcowkit
