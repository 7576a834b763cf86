#include "qcowkit/testing/faulty_device.hpp"

#include <algorithm>
#include <cstring>
#include <random>

namespace qcowkit {

namespace {

bool matches(FaultOp mask, FaultOp op) {
  return (static_cast<unsigned>(mask) & static_cast<unsigned>(op)) != 0;
}

const char* op_name(FaultOp op) {
  switch (op) {
    case FaultOp::read: return "read";
    case FaultOp::write: return "write";
    case FaultOp::flush: return "flush";
    case FaultOp::discard: return "discard";
    case FaultOp::write_zeroes: return "write_zeroes";
    case FaultOp::resize: return "resize";
    case FaultOp::extents: return "extents";
    default: return "operation";
  }
}

// Overwrites the kinds of [from, to) in a sorted, contiguous extent list.
void paint(std::vector<Extent>& extents, uint64_t from, uint64_t to, ExtentKind kind) {
  std::vector<Extent> out;
  for (const Extent& e : extents) {
    const uint64_t e_end = e.offset + e.length;
    if (e_end <= from || e.offset >= to) {
      out.push_back(e);
      continue;
    }
    if (e.offset < from) out.push_back(Extent{e.offset, from - e.offset, e.kind});
    const uint64_t a = std::max(e.offset, from), b = std::min(e_end, to);
    out.push_back(Extent{a, b - a, kind});
    if (e_end > to) out.push_back(Extent{to, e_end - to, e.kind});
  }
  extents.clear();
  for (const Extent& e : out) {
    if (!extents.empty() && extents.back().kind == e.kind)
      extents.back().length += e.length;
    else
      extents.push_back(e);
  }
}

}  // namespace

FaultyDevice::FaultyDevice(std::shared_ptr<BlockDevice> durable, bool volatile_cache)
    : durable_(std::move(durable)), volatile_cache_(volatile_cache),
      size_(durable_->info().size) {}

void FaultyDevice::fail_nth(uint64_t nth, int error, FaultOp ops, bool sticky) {
  std::lock_guard lock(mutex_);
  matched_count_ = 0;
  fail_at_ = nth;
  fail_error_ = error;
  fail_ops_ = ops;
  fail_sticky_ = sticky;
  failing_ = false;
}

void FaultyDevice::fail_range(uint64_t offset, uint64_t length, int error, FaultOp ops) {
  std::lock_guard lock(mutex_);
  range_faults_.push_back(RangeFault{offset, length, error, ops});
}

void FaultyDevice::cut_power_after(uint64_t count) {
  std::lock_guard lock(mutex_);
  power_budget_ = count;
}

void FaultyDevice::clear_faults() {
  std::lock_guard lock(mutex_);
  fail_at_.reset();
  failing_ = false;
  range_faults_.clear();
  power_budget_.reset();
}

void FaultyDevice::power_cut(double keep_fraction, uint64_t seed) {
  std::lock_guard lock(mutex_);
  if (keep_fraction > 0) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    for (const PendingOp& op : log_)
      if (coin(rng) < keep_fraction) (void)apply(op);
  }
  log_.clear();
  powered_ = false;
  size_ = durable_->info().size;
}

void FaultyDevice::revive() {
  std::lock_guard lock(mutex_);
  powered_ = true;
  power_budget_.reset();
  size_ = durable_->info().size;
}

bool FaultyDevice::powered() const {
  std::lock_guard lock(mutex_);
  return powered_;
}

uint64_t FaultyDevice::operations() const {
  std::lock_guard lock(mutex_);
  return op_count_;
}

uint64_t FaultyDevice::mutating_operations() const {
  std::lock_guard lock(mutex_);
  return mutating_count_;
}

size_t FaultyDevice::unflushed_operations() const {
  std::lock_guard lock(mutex_);
  return log_.size();
}

// Decides whether an operation may proceed; called with mutex_ held.
Status FaultyDevice::admit(FaultOp op, uint64_t offset, uint64_t length) {
  ++op_count_;
  if (closed_) return make_error(EBADF, std::string(op_name(op)) + ": device is closed");
  if (!powered_) return make_error(EIO, std::string(op_name(op)) + ": device has no power");
  if (matches(fail_ops_, op)) {
    if (failing_ && fail_sticky_)
      return make_error(fail_error_, std::string("injected ") + op_name(op) +
                                         " error at offset " + std::to_string(offset));
    if (fail_at_) {
      ++matched_count_;
      if (matched_count_ == *fail_at_) {
        failing_ = true;
        fail_at_.reset();
        return make_error(fail_error_, std::string("injected ") + op_name(op) +
                                           " error at offset " + std::to_string(offset));
      }
    }
  }
  const bool ranged = op != FaultOp::flush && op != FaultOp::resize;
  for (const RangeFault& f : range_faults_) {
    const bool overlaps = offset < f.offset + f.length && f.offset < offset + length;
    if (ranged && overlaps && matches(f.ops, op))
      return make_error(f.error, std::string("injected ") + op_name(op) + " error at offset " +
                                     std::to_string(std::max(offset, f.offset)));
  }
  const bool mutating = matches(FaultOp::mutating, op) && op != FaultOp::flush;
  if (mutating && power_budget_) {
    if (*power_budget_ == 0) {
      log_.clear();
      powered_ = false;
      size_ = durable_->info().size;
      return make_error(EIO, std::string(op_name(op)) + ": device lost power");
    }
    --*power_budget_;
  }
  return {};
}

Status FaultyDevice::apply(const PendingOp& op) {
  switch (op.kind) {
    case FaultOp::write:
      return durable_->write(op.offset, ConstByteSpan(op.data));
    case FaultOp::discard:
      return durable_->discard(op.offset, op.length);
    case FaultOp::write_zeroes:
      return durable_->write_zeroes(op.offset, op.length);
    case FaultOp::resize:
      return durable_->resize(op.length);
    default:
      return {};
  }
}

Status FaultyDevice::flush_log_locked() {
  size_t applied = 0;
  Status status;
  for (; applied < log_.size(); ++applied) {
    status = apply(log_[applied]);
    if (!status.ok()) break;
  }
  log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(applied));
  QK_TRY(std::move(status));
  return durable_->flush();
}

DeviceInfo FaultyDevice::info() const {
  std::lock_guard lock(mutex_);
  DeviceInfo info = durable_->info();
  info.size = size_;
  return info;
}

Status FaultyDevice::read(uint64_t offset, ByteSpan buffer) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::read, offset, buffer.size()));
  DeviceInfo geometry = durable_->info();
  QK_TRY(check_request(DeviceInfo{size_, geometry.sector_size, false}, offset, buffer.size(),
                       false, "read"));
  // Durable contents first (zeroes past the durable end), then the log on top.
  std::memset(buffer.data(), 0, buffer.size());
  if (offset < geometry.size) {
    const uint64_t n = std::min<uint64_t>(buffer.size(), geometry.size - offset);
    QK_TRY(durable_->read(offset, buffer.subspan(0, n)));
  }
  const uint64_t end = offset + buffer.size();
  for (const PendingOp& op : log_) {
    if (op.kind == FaultOp::resize) {
      if (op.length < end) {
        const uint64_t from = std::max(op.length, offset);
        std::memset(buffer.data() + (from - offset), 0, end - from);
      }
      continue;
    }
    const uint64_t a = std::max(op.offset, offset), b = std::min(op.offset + op.length, end);
    if (a >= b) continue;
    if (op.kind == FaultOp::write)
      std::memcpy(buffer.data() + (a - offset), op.data.data() + (a - op.offset), b - a);
    else
      std::memset(buffer.data() + (a - offset), 0, b - a);
  }
  return {};
}

void FaultyDevice::note_mutation_locked() { ++mutating_count_; }

Status FaultyDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::write, offset, data.size()));
  QK_TRY(check_request(DeviceInfo{size_, durable_->info().sector_size, durable_->info().read_only},
                       offset, data.size(), true, "write"));
  note_mutation_locked();
  if (!volatile_cache_) return durable_->write(offset, data, flags);
  log_.push_back(PendingOp{FaultOp::write, offset, data.size(), {data.begin(), data.end()}});
  return flags.fua ? flush_log_locked() : Status{};
}

Status FaultyDevice::flush() {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::flush, 0, 0));
  if (!volatile_cache_) return durable_->flush();
  return flush_log_locked();
}

Status FaultyDevice::discard(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::discard, offset, length));
  QK_TRY(check_request(DeviceInfo{size_, durable_->info().sector_size, durable_->info().read_only},
                       offset, length, true, "discard"));
  note_mutation_locked();
  if (!volatile_cache_) return durable_->discard(offset, length);
  log_.push_back(PendingOp{FaultOp::discard, offset, length, {}});
  return {};
}

Status FaultyDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::write_zeroes, offset, length));
  QK_TRY(check_request(DeviceInfo{size_, durable_->info().sector_size, durable_->info().read_only},
                       offset, length, true, "write_zeroes"));
  note_mutation_locked();
  if (!volatile_cache_) return durable_->write_zeroes(offset, length, flags);
  log_.push_back(PendingOp{FaultOp::write_zeroes, offset, length, {}});
  return flags.fua ? flush_log_locked() : Status{};
}

Status FaultyDevice::resize(uint64_t new_size) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::resize, new_size, 0));
  if (durable_->info().read_only) return make_error(EROFS, "resize: device is read-only");
  note_mutation_locked();
  if (!volatile_cache_) {
    QK_TRY(durable_->resize(new_size));
    size_ = new_size;
    return {};
  }
  log_.push_back(PendingOp{FaultOp::resize, 0, new_size, {}});
  size_ = new_size;
  return {};
}

Result<std::vector<Extent>> FaultyDevice::extents(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mutex_);
  QK_TRY(admit(FaultOp::extents, offset, length));
  QK_TRY(check_request(DeviceInfo{size_, durable_->info().sector_size, false}, offset, length,
                       false, "extents"));
  std::vector<Extent> out;
  if (length == 0) return out;
  const uint64_t end = offset + length;
  const uint64_t durable_size = durable_->info().size;
  uint64_t pos = offset;
  while (pos < std::min(end, durable_size)) {
    QK_ASSIGN_OR_RETURN(auto part, durable_->extents(pos, std::min(end, durable_size) - pos));
    if (part.empty()) break;
    for (const Extent& e : part) out.push_back(e);
    pos = part.back().offset + part.back().length;
  }
  if (pos < end) out.push_back(Extent{pos, end - pos, ExtentKind::hole});
  for (const PendingOp& op : log_) {
    if (op.kind == FaultOp::resize) {
      if (op.length < end) paint(out, std::max(op.length, offset), end, ExtentKind::hole);
      continue;
    }
    const uint64_t a = std::max(op.offset, offset), b = std::min(op.offset + op.length, end);
    if (a < b) paint(out, a, b, op.kind == FaultOp::write ? ExtentKind::data : ExtentKind::hole);
  }
  return out;
}

Status FaultyDevice::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return {};
  if (!powered_) return make_error(EIO, "close: device has no power");
  if (volatile_cache_) QK_TRY(flush_log_locked());
  closed_ = true;  // the durable device stays open: tests reopen it
  return {};
}

}  // namespace qcowkit
