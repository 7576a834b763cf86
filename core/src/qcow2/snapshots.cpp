#include "qcow2/snapshots.hpp"

#include <algorithm>

#include "qcow2/format.hpp"
#include "util/endian.hpp"

namespace qcowkit::qcow2 {

namespace {

Error invalid(const std::string& what) {
  return make_error(EINVAL, "invalid qcow2 snapshot table: " + what);
}

}  // namespace

Result<SnapshotTable> read_snapshot_table(BlockDevice& file, const Header& h) {
  SnapshotTable table;
  if (h.nb_snapshots == 0) return table;
  const uint64_t file_size = file.info().size;
  if (h.snapshots_offset >= file_size) return invalid("it starts past the end of the file");
  // Read what the file holds, but never more than QEMU's limit.
  const uint64_t available = std::min(file_size - h.snapshots_offset, kMaxSnapshotTableBytes);
  std::vector<uint8_t> buf(available);
  QK_TRY(file.read(h.snapshots_offset, buf));
  uint64_t pos = 0;
  for (uint32_t i = 0; i < h.nb_snapshots; ++i) {
    if (pos + 40 > buf.size()) return invalid("snapshot " + std::to_string(i) + " is truncated");
    const uint8_t* p = buf.data() + pos;
    SnapshotEntry e;
    e.l1_table_offset = load_be64(p);
    e.l1_size = load_be32(p + 8);
    const uint16_t id_size = load_be16(p + 12);
    const uint16_t name_size = load_be16(p + 14);
    e.info.date_sec = load_be32(p + 16);
    e.info.date_nsec = load_be32(p + 20);
    e.info.vm_clock_nsec = load_be64(p + 24);
    e.info.vm_state_size = load_be32(p + 32);
    const uint32_t extra_size = load_be32(p + 36);
    const uint64_t entry_size = 40 + uint64_t{extra_size} + id_size + name_size;
    if (extra_size > 1024 || pos + entry_size > buf.size())
      return invalid("snapshot " + std::to_string(i) + " runs past the table");
    const uint8_t* extra = p + 40;
    e.info.virtual_size = h.size;
    if (extra_size >= 8) e.info.vm_state_size = load_be64(extra);
    if (extra_size >= 16) e.info.virtual_size = load_be64(extra + 8);
    if (extra_size >= 24) e.info.icount = load_be64(extra + 16);
    e.extra.assign(extra, extra + extra_size);
    e.info.id.assign(reinterpret_cast<const char*>(extra + extra_size), id_size);
    e.info.name.assign(reinterpret_cast<const char*>(extra + extra_size + id_size), name_size);
    if (e.l1_table_offset % h.cluster_size() != 0 || e.l1_table_offset > kMaxOffset)
      return invalid("snapshot " + e.info.name + " has an unaligned L1 table");
    if (uint64_t{e.l1_size} * 8 > kMaxL1Bytes)
      return invalid("snapshot " + e.info.name + " has an L1 table larger than 32 MiB");
    if (e.l1_size > 0 && (e.l1_table_offset == 0 || e.l1_table_offset >= file_size ||
                          uint64_t{e.l1_size} * 8 > file_size - e.l1_table_offset))
      return invalid("snapshot " + e.info.name + " has an L1 table outside the file");
    table.entries.push_back(std::move(e));
    pos += (entry_size + 7) & ~uint64_t{7};
  }
  table.byte_size = pos;
  return table;
}

std::vector<uint8_t> encode_snapshot_table(const std::vector<SnapshotEntry>& entries) {
  std::vector<uint8_t> out;
  for (const SnapshotEntry& e : entries) {
    std::vector<uint8_t> extra = e.extra;
    if (extra.size() < 24) extra.resize(24, 0);
    store_be64(extra.data(), e.info.vm_state_size);
    store_be64(extra.data() + 8, e.info.virtual_size);
    store_be64(extra.data() + 16, e.info.icount);
    const size_t start = out.size();
    out.resize(start + 40, 0);
    uint8_t* p = out.data() + start;
    store_be64(p, e.l1_table_offset);
    store_be32(p + 8, e.l1_size);
    store_be16(p + 12, static_cast<uint16_t>(e.info.id.size()));
    store_be16(p + 14, static_cast<uint16_t>(e.info.name.size()));
    store_be32(p + 16, e.info.date_sec);
    store_be32(p + 20, e.info.date_nsec);
    store_be64(p + 24, e.info.vm_clock_nsec);
    // The 32-bit field saturates; the extra data holds the real size.
    store_be32(p + 32, static_cast<uint32_t>(std::min<uint64_t>(e.info.vm_state_size, UINT32_MAX)));
    store_be32(p + 36, static_cast<uint32_t>(extra.size()));
    out.insert(out.end(), extra.begin(), extra.end());
    out.insert(out.end(), e.info.id.begin(), e.info.id.end());
    out.insert(out.end(), e.info.name.begin(), e.info.name.end());
    out.resize((out.size() + 7) & ~size_t{7}, 0);
  }
  return out;
}

}  // namespace qcowkit::qcow2
