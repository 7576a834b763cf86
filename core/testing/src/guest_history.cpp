#include "qcowkit/testing/guest_history.hpp"

#include <algorithm>
#include <cstring>

namespace qcowkit::testing {

namespace {

constexpr uint32_t kMagic = 0x3158'4b51;  // "QKX1" little-endian: marks explorer data

uint64_t mix(uint64_t x) {  // splitmix64's finalizer: distinct inputs, unrelated outputs
  x += 0x9e37'79b9'7f4a'7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58'476d'1ce4'e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d0'49bb'1331'11ebull;
  return x ^ (x >> 31);
}

uint32_t load32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t load64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

}  // namespace

void fill_sector(uint8_t* out, uint32_t write_id, uint64_t sector) {
  std::memcpy(out, &kMagic, 4);
  std::memcpy(out + 4, &write_id, 4);
  std::memcpy(out + 8, &sector, 8);
  // One word repeated: compressible, and different for every (write, sector).
  const uint64_t word = mix((uint64_t{write_id} << 40) ^ sector) | 1;
  for (uint64_t at = 16; at < kGuestSector; at += 8) std::memcpy(out + at, &word, 8);
}

std::string identify_sector(const uint8_t* bytes, uint64_t sector) {
  if (is_all_zero(ConstByteSpan(bytes, kGuestSector))) return "zeroes";
  if (load32(bytes) == kMagic) {
    const uint32_t id = load32(bytes + 4);
    const uint64_t from = load64(bytes + 8);
    uint8_t expect[kGuestSector];
    fill_sector(expect, id, from);
    if (std::memcmp(expect, bytes, kGuestSector) == 0)
      return from == sector ? "write #" + std::to_string(id) + "'s data"
                            : "write #" + std::to_string(id) + "'s data for ANOTHER sector (" +
                                  std::to_string(from) + ")";
  }
  return "unrecognised bytes (first " + std::to_string(bytes[0]) + "," + std::to_string(bytes[1]) + "," +
         std::to_string(bytes[2]) + "," + std::to_string(bytes[3]) + ")";
}

const char* to_string(GuestOpKind kind) {
  switch (kind) {
    case GuestOpKind::write: return "write";
    case GuestOpKind::write_zeroes: return "write_zeroes";
    case GuestOpKind::discard: return "discard";
    case GuestOpKind::write_compressed: return "write_compressed";
    case GuestOpKind::flush: return "flush";
    case GuestOpKind::read: return "read";
  }
  return "op";
}

bool writes_data(GuestOpKind kind) {
  return kind == GuestOpKind::write || kind == GuestOpKind::write_compressed;
}

bool changes_sectors(GuestOpKind kind) {
  return writes_data(kind) || kind == GuestOpKind::write_zeroes || kind == GuestOpKind::discard;
}

GuestHistory::GuestHistory(std::vector<uint8_t> initial)
    : initial_(std::move(initial)), cover_(initial_.size() / kGuestSector) {}

uint64_t GuestHistory::tick() {
  std::lock_guard lock(mutex_);
  return ++clock_;
}

uint32_t GuestHistory::begin(const GuestOp& op) {
  std::lock_guard lock(mutex_);
  records_.push_back(Record{op, ++clock_, kNever, true});
  const auto id = static_cast<uint32_t>(records_.size());
  if (changes_sectors(op.kind))
    for (uint64_t s = op.offset / kGuestSector; s < (op.offset + op.length) / kGuestSector; ++s)
      cover_[s].push_back(id);
  return id;
}

void GuestHistory::end(uint32_t id, bool ok) {
  std::lock_guard lock(mutex_);
  Record& r = records_[id - 1];
  r.end = ++clock_;
  r.ok = ok;
}

std::vector<uint8_t> GuestHistory::data_of(uint32_t id) const {
  GuestOp op;
  {
    std::lock_guard lock(mutex_);
    op = records_[id - 1].op;
  }
  std::vector<uint8_t> out(op.length, 0);
  if (writes_data(op.kind))
    for (uint64_t at = 0; at < op.length; at += kGuestSector)
      fill_sector(out.data() + at, id, (op.offset + at) / kGuestSector);
  return out;
}

Window GuestHistory::crash_window(uint64_t before, uint64_t after) const {
  std::lock_guard lock(mutex_);
  uint64_t settled = 0;
  for (const Record& r : records_)
    if (r.op.kind == GuestOpKind::flush && r.ok && r.end < before) settled = std::max(settled, r.start);
  return Window{settled, before, after};
}

size_t GuestHistory::operations() const {
  std::lock_guard lock(mutex_);
  return records_.size();
}

std::string GuestHistory::line_locked(uint32_t id) const {
  const Record& r = records_[id - 1];
  std::string out = "#" + std::to_string(id) + " thread " + std::to_string(r.op.thread) + " " +
                    to_string(r.op.kind);
  if (r.op.kind != GuestOpKind::flush)
    out += " " + std::to_string(r.op.offset) + "+" + std::to_string(r.op.length);
  if (r.op.fua) out += " fua";
  if (r.op.may_trim) out += " may_trim";
  out += " start " + std::to_string(r.start) + " end " +
         (r.end == kNever ? std::string("(running)") : std::to_string(r.end));
  if (!r.ok) out += " FAILED";
  return out;
}

std::string GuestHistory::dump(size_t max_lines) const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (uint32_t id = 1; id <= records_.size(); ++id) {
    if (id > max_lines) {
      out += "... " + std::to_string(records_.size() - max_lines) + " more\n";
      break;
    }
    out += line_locked(id) + "\n";
  }
  return out;
}

std::optional<std::string> GuestHistory::check(uint64_t offset, ConstByteSpan bytes,
                                               const Window& window) const {
  std::lock_guard lock(mutex_);
  uint8_t expect[kGuestSector];
  for (uint64_t at = 0; at + kGuestSector <= bytes.size(); at += kGuestSector) {
    const uint64_t sector = (offset + at) / kGuestSector;
    const uint8_t* seen = bytes.data() + at;
    const std::vector<uint32_t>& ids = cover_[sector];
    auto settled = [&](const Record& r) {
      return r.end != kNever && r.ok &&
             (r.end < window.settled_before || (r.op.fua && r.end < window.fua_before));
    };
    uint64_t latest_settled_start = 0;
    bool any_settled = false;
    for (uint32_t id : ids) {
      const Record& r = records_[id - 1];
      if (settled(r)) {
        any_settled = true;
        latest_settled_start = std::max(latest_settled_start, r.start);
      }
    }
    auto acceptable = [&](const Record& r) {
      return r.start < window.started_before && (!any_settled || r.end > latest_settled_start);
    };
    bool match = !any_settled && std::memcmp(seen, initial_.data() + sector * kGuestSector, kGuestSector) == 0;
    for (size_t i = 0; i < ids.size() && !match; ++i) {
      const Record& r = records_[ids[i] - 1];
      if (!acceptable(r)) continue;
      if (writes_data(r.op.kind)) {
        fill_sector(expect, ids[i], sector);
        match = std::memcmp(seen, expect, kGuestSector) == 0;
      } else {
        match = is_all_zero(ConstByteSpan(seen, kGuestSector));
      }
    }
    if (match) continue;

    std::string report = "sector " + std::to_string(sector) + " (guest offset " +
                         std::to_string(sector * kGuestSector) + ") holds " +
                         identify_sector(seen, sector) + "; acceptable:";
    if (!any_settled)
      report += " the initial value (" +
                identify_sector(initial_.data() + sector * kGuestSector, sector) + ")";
    for (uint32_t id : ids)
      if (acceptable(records_[id - 1]))
        report += " #" + std::to_string(id) + (writes_data(records_[id - 1].op.kind) ? "" : " (zeroes)");
    report += "\nwindow: settled = completed before " + std::to_string(window.settled_before) +
              " (fua: before " + std::to_string(window.fua_before) + "), seen = started before " +
              (window.started_before == kNever ? std::string("the end")
                                                : std::to_string(window.started_before));
    report += "\noperations on this sector:\n";
    for (uint32_t id : ids) report += "  " + line_locked(id) + (settled(records_[id - 1]) ? " (settled)\n" : "\n");
    report += "flushes:\n";
    for (uint32_t id = 1; id <= records_.size(); ++id)
      if (records_[id - 1].op.kind == GuestOpKind::flush) report += "  " + line_locked(id) + "\n";
    return report;
  }
  return std::nullopt;
}

}  // namespace qcowkit::testing
