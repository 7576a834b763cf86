// The VHDX log: finding the active sequence, collecting what it writes, and
// replaying it into the file or into a read-only overlay.
//
// The log is a circular buffer of entries, each a whole number of 4 KiB
// sectors: a 64-byte header ("loge", CRC-32C over the whole entry, length,
// tail, sequence number, descriptor count, log GUID, flushed and last file
// offsets), 32-byte descriptors ("zero": a run of zeroes; "desc": one 4 KiB
// sector whose first 8 and last 4 bytes sit in the descriptor), padded to a
// sector, then one data sector per "desc" ("data", sequence high, 4084
// bytes, sequence low). A sequence is a chain of entries, each following the
// previous one in the buffer with the next sequence number; the newest
// chain whose head's tail lies in the chain is replayed from that tail.
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "formats/vhdx_structs.hpp"
#include "qcowkit/mutex.hpp"
#include "util/endian_le.hpp"

namespace qcowkit::formats::vhdx {
namespace {

// The largest log replayed: everything it writes is held in memory.
constexpr uint64_t kMaxLogLength = 256 * MiB;
// How far past the end of the file a log may say the file reaches (blocks
// whose data never reached the disk before a crash).
constexpr uint64_t kMaxGrowth = 64ull << 30;

struct EntryHeader {
  uint32_t length = 0, tail = 0, descriptors = 0;
  uint64_t sequence = 0, flushed_file_offset = 0, last_file_offset = 0;
};

class LogReader {
 public:
  LogReader(BlockDevice& file, const Header& h) : file_(file), h_(h) {}

  // The log's bytes [pos, pos + n), wrapping at its end.
  Status read(uint64_t pos, uint8_t* out, uint64_t n) {
    while (n > 0) {
      pos %= h_.log_length;
      const uint64_t piece = std::min<uint64_t>(n, h_.log_length - pos);
      QK_TRY(file_.read(h_.log_offset + pos, ByteSpan(out, piece)));
      out += piece;
      pos += piece;
      n -= piece;
    }
    return {};
  }

  std::string where(uint64_t pos) const {
    return "VHDX log entry at log offset " + std::to_string(pos);
  }

  // The entry at `pos` when one of this log is there (signature, GUID,
  // checksum); nullopt when not. An entry of this log with impossible
  // fields is an error.
  Result<std::optional<EntryHeader>> entry_at(uint64_t pos, std::vector<uint8_t>& bytes) {
    uint8_t b[64];
    QK_TRY(read(pos, b, sizeof b));
    if (load_le32(b) != kLogeSig || std::memcmp(b + 32, h_.log.data(), 16) != 0)
      return std::optional<EntryHeader>();
    EntryHeader e;
    e.length = load_le32(b + 8);
    e.tail = load_le32(b + 12);
    e.sequence = load_le64(b + 16);
    e.descriptors = load_le32(b + 24);
    e.flushed_file_offset = load_le64(b + 48);
    e.last_file_offset = load_le64(b + 56);
    if (e.length == 0 || e.length % kLogSector || e.length > h_.log_length)
      return make_error(EINVAL, where(pos) + ": length " + std::to_string(e.length) +
                                    " is not whole sectors inside the " +
                                    std::to_string(h_.log_length) + "-byte log");
    if (e.tail % kLogSector || e.tail >= h_.log_length)
      return make_error(EINVAL, where(pos) + ": tail " + std::to_string(e.tail) +
                                    " is outside the log");
    if ((uint64_t{e.descriptors} * 32 + 64 + kLogSector - 1) / kLogSector * kLogSector > e.length)
      return make_error(EINVAL, where(pos) + ": " + std::to_string(e.descriptors) +
                                    " descriptors run past the entry's " +
                                    std::to_string(e.length) + " bytes");
    // Entries of a valid log do not overlap, so checking them all reads
    // the log about once; a log whose every sector claims a long entry
    // would read it once per sector.
    checked_ += e.length;
    if (checked_ > 4 * uint64_t{h_.log_length})
      return make_error(EINVAL, where(pos) + ": the log's entries overlap (more than 4 times "
                                             "the log's size claimed by entries)");
    bytes.resize(e.length);
    QK_TRY(read(pos, bytes.data(), e.length));
    if (!checksum_ok(bytes.data(), bytes.size(), 4))
      return std::optional<EntryHeader>();  // a torn write: not part of any sequence
    return std::optional<EntryHeader>(e);
  }

 private:
  BlockDevice& file_;
  const Header& h_;
  uint64_t checked_ = 0;  // bytes of entries checksummed so far
};

// Adds the writes of one checked entry.
Status collect(const std::string& where, const EntryHeader& e, const std::vector<uint8_t>& bytes,
               LogReplay& out) {
  uint64_t data_at = (uint64_t{e.descriptors} * 32 + 64 + kLogSector - 1) / kLogSector * kLogSector;
  for (uint32_t i = 0; i < e.descriptors; ++i) {
    const uint8_t* d = bytes.data() + 64 + uint64_t{i} * 32;
    const std::string what = where + ", descriptor " + std::to_string(i);
    const uint32_t sig = load_le32(d);
    const uint64_t offset = load_le64(d + 16);
    if (load_le64(d + 24) != e.sequence)
      return make_error(EINVAL, what + ": sequence number differs from the entry's");
    if (offset % kLogSector)
      return make_error(EINVAL, what + ": file offset " + std::to_string(offset) +
                                    " is not 4 KiB aligned");
    LogWrite w;
    w.offset = offset;
    if (sig == kZeroSig) {
      w.zero_length = load_le64(d + 8);
      if (w.zero_length == 0 || w.zero_length % kLogSector || w.zero_length > kMaxGrowth * 4 ||
          offset > e.last_file_offset || e.last_file_offset - offset < w.zero_length)
        return make_error(EINVAL, what + ": zero run of " + std::to_string(w.zero_length) +
                                      " bytes at " + std::to_string(offset) +
                                      " is not whole sectors inside the file");
    } else if (sig == kDescSig) {
      if (data_at + kLogSector > bytes.size())
        return make_error(EINVAL, what + ": its data sector lies past the entry");
      const uint8_t* s = bytes.data() + data_at;
      if (load_le32(s) != kDataSig || load_le32(s + 4) != uint32_t(e.sequence >> 32) ||
          load_le32(s + 4092) != uint32_t(e.sequence))
        return make_error(EINVAL, what + ": data sector signature or sequence number is wrong");
      if (offset > e.last_file_offset || e.last_file_offset - offset < kLogSector)
        return make_error(EINVAL, what + ": sector at " + std::to_string(offset) +
                                      " lies past the log's last file offset");
      w.data.resize(kLogSector);
      std::memcpy(w.data.data(), d + 8, 8);              // leading bytes
      std::memcpy(w.data.data() + 8, s + 8, 4084);       // the sector's middle
      std::memcpy(w.data.data() + 4092, d + 4, 4);       // trailing bytes
      data_at += kLogSector;
    } else {
      return make_error(EINVAL, what + ": unknown signature");
    }
    out.writes.push_back(std::move(w));
  }
  return {};
}

}  // namespace

Result<LogReplay> read_log(BlockDevice& file, const Header& h) {
  const uint64_t file_size = file.info().size;
  if (h.log_length == 0 || h.log_length % MiB || h.log_offset % MiB ||
      h.log_offset < kHeaderSectionSize || h.log_offset > file_size ||
      file_size - h.log_offset < h.log_length)
    return make_error(EINVAL, "VHDX log at offset " + std::to_string(h.log_offset) + " (" +
                                  std::to_string(h.log_length) +
                                  " bytes) is not whole MiB inside the file");
  if (h.log_length > kMaxLogLength)
    return make_error(ENOTSUP, "VHDX log of " + std::to_string(h.log_length) +
                                   " bytes is over the " + std::to_string(kMaxLogLength >> 20) +
                                   " MiB this reader replays");
  if (h.log_version != 0)
    return make_error(ENOTSUP, "VHDX log version " + std::to_string(h.log_version) +
                                   " is not supported (0 is)");
  LogReader reader(file, h);
  // Every valid entry, by log offset.
  std::map<uint64_t, EntryHeader> entries;
  std::vector<uint8_t> bytes;
  for (uint64_t pos = 0; pos < h.log_length; pos += kLogSector) {
    QK_ASSIGN_OR_RETURN(auto e, reader.entry_at(pos, bytes));
    if (e) entries.emplace(pos, *e);
  }
  // Chains: each entry's successor is the entry right after it with the
  // next sequence number. Sequence numbers rise along a chain, so chains
  // end; start them only where no entry leads in.
  auto next_of = [&](uint64_t pos) -> std::optional<uint64_t> {
    const EntryHeader& e = entries.at(pos);
    const uint64_t n = (pos + e.length) % h.log_length;
    auto it = entries.find(n);
    if (it == entries.end() || it->second.sequence != e.sequence + 1) return std::nullopt;
    return n;
  };
  std::map<uint64_t, bool> has_pred;
  for (const auto& [pos, e] : entries)
    if (auto n = next_of(pos)) has_pred[*n] = true;
  std::optional<std::vector<uint64_t>> best;
  uint64_t best_seq = 0;
  for (const auto& [start, e] : entries) {
    if (has_pred.count(start)) continue;
    std::vector<uint64_t> chain{start};
    while (auto n = next_of(chain.back())) {
      if (chain.size() > entries.size()) break;  // cannot happen: sequence numbers rise
      chain.push_back(*n);
    }
    const EntryHeader& head = entries.at(chain.back());
    auto tail = std::find(chain.begin(), chain.end(), uint64_t{head.tail});
    if (tail == chain.end()) continue;  // the head needs entries that are gone: not valid
    if (!best || head.sequence > best_seq) {
      best = std::vector<uint64_t>(tail, chain.end());
      best_seq = head.sequence;
    }
  }
  LogReplay replay;
  replay.last_file_offset = file_size;
  if (!best) return replay;  // an empty log: nothing to replay
  const EntryHeader& head = entries.at(best->back());
  if (head.flushed_file_offset > file_size)
    return make_error(EINVAL, reader.where(best->back()) + ": the file is " +
                                  std::to_string(file_size) + " bytes, shorter than the " +
                                  std::to_string(head.flushed_file_offset) +
                                  " the log says were flushed");
  if (head.last_file_offset < head.flushed_file_offset ||
      head.last_file_offset > file_size + kMaxGrowth)
    return make_error(EINVAL, reader.where(best->back()) + ": last file offset " +
                                  std::to_string(head.last_file_offset) + " is out of range");
  replay.last_file_offset = std::max(file_size, head.last_file_offset);
  for (uint64_t pos : *best) {
    QK_ASSIGN_OR_RETURN(auto e, reader.entry_at(pos, bytes));
    if (!e) return make_error(EIO, reader.where(pos) + ": changed while being read");
    EntryHeader copy = *e;
    copy.last_file_offset = replay.last_file_offset;
    QK_TRY(collect(reader.where(pos), copy, bytes, replay));
    ++replay.entries;
  }
  return replay;
}

Status apply_log(BlockDevice& file, const LogReplay& replay) {
  if (file.info().size < replay.last_file_offset) QK_TRY(file.resize(replay.last_file_offset));
  for (const LogWrite& w : replay.writes) {
    if (w.zero_length)
      QK_TRY(file.write_zeroes(w.offset, w.zero_length));
    else
      QK_TRY(file.write(w.offset, w.data));
  }
  return file.flush();
}

namespace {

// The file as the replay leaves it: zero runs and 4 KiB sectors laid over
// it, later writes over earlier ones.
class ReplayOverlay final : public BlockDevice {
 public:
  ReplayOverlay(std::shared_ptr<BlockDevice> file, LogReplay replay)
      : file_(std::move(file)), size_(replay.last_file_offset) {
    for (LogWrite& w : replay.writes) {
      if (w.zero_length) {
        // Sectors written earlier lie under the zeroes now.
        sectors_.erase(sectors_.lower_bound(w.offset), sectors_.lower_bound(w.offset + w.zero_length));
        add_zeroes(w.offset, w.offset + w.zero_length);
      } else {
        sectors_[w.offset] = std::move(w.data);
      }
    }
  }

  DeviceInfo info() const override { return DeviceInfo{size_, 1, true}; }

  Status read(uint64_t offset, ByteSpan buffer) override {
    QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
    const uint64_t end = offset + buffer.size();
    const uint64_t base = file_->info().size;
    if (offset < base)
      QK_TRY(file_->read(offset, buffer.first(std::min(end, base) - offset)));
    if (end > base) {
      const uint64_t from = std::max(offset, base);
      std::memset(buffer.data() + (from - offset), 0, end - from);
    }
    // Zero runs are disjoint and sorted; start with the one before `offset`.
    auto z = zeroes_.upper_bound(offset);
    if (z != zeroes_.begin()) --z;
    for (; z != zeroes_.end() && z->first < end; ++z) {
      const uint64_t a = std::max(z->first, offset), b = std::min(z->second, end);
      if (a < b) std::memset(buffer.data() + (a - offset), 0, b - a);
    }
    auto s = sectors_.upper_bound(offset);
    if (s != sectors_.begin()) --s;
    for (; s != sectors_.end() && s->first < end; ++s) {
      const uint64_t a = std::max(s->first, offset), b = std::min(s->first + kLogSector, end);
      if (a < b) std::memcpy(buffer.data() + (a - offset), s->second.data() + (a - s->first), b - a);
    }
    return {};
  }

  Status write(uint64_t, ConstByteSpan, WriteFlags) override { return read_only(); }
  Status flush() override { return {}; }
  Status discard(uint64_t, uint64_t) override { return read_only(); }
  Status write_zeroes(uint64_t, uint64_t, ZeroFlags) override { return read_only(); }
  Status resize(uint64_t) override { return read_only(); }

  // The file's extents, except where the replay wrote: data there.
  Result<std::vector<Extent>> extents(uint64_t offset, uint64_t length) override {
    QK_TRY(check_request(info(), offset, length, false, "extents"));
    return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};
  }

  Status close() override { return {}; }

 private:
  static Status read_only() { return make_error(EROFS, "VHDX log replay overlay is read-only"); }

  void add_zeroes(uint64_t a, uint64_t b) {
    auto it = zeroes_.upper_bound(a);
    if (it != zeroes_.begin() && std::prev(it)->second >= a) --it;
    while (it != zeroes_.end() && it->first <= b) {
      a = std::min(a, it->first);
      b = std::max(b, it->second);
      it = zeroes_.erase(it);
    }
    zeroes_.emplace(a, b);
  }

  // Built once in the constructor, then only read: no lock needed.
  std::shared_ptr<BlockDevice> file_;
  const uint64_t size_;
  std::map<uint64_t, uint64_t> zeroes_;              // start -> end, disjoint
  std::map<uint64_t, std::vector<uint8_t>> sectors_;  // offset -> 4 KiB
};

}  // namespace

std::shared_ptr<BlockDevice> replay_overlay(std::shared_ptr<BlockDevice> file, LogReplay replay) {
  return std::make_shared<ReplayOverlay>(std::move(file), std::move(replay));
}

}  // namespace qcowkit::formats::vhdx
