#include "qcowkit/aligned_device.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

namespace qcowkit {

std::shared_ptr<BlockDevice> AlignedDevice::over(std::shared_ptr<BlockDevice> below) {
  if (below->info().sector_size <= 1) return below;
  return std::make_shared<AlignedDevice>(std::move(below));
}

AlignedDevice::AlignedDevice(std::shared_ptr<BlockDevice> below)
    : below_(std::move(below)), sector_(std::max<uint32_t>(below_->info().sector_size, 1)) {}

DeviceInfo AlignedDevice::info() const {
  DeviceInfo i = below_->info();
  i.size -= i.size % sector_;
  i.sector_size = 1;
  return i;
}

Status AlignedDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check_request(info(), offset, buffer.size(), false, "read"));
  const uint64_t end = offset + buffer.size();
  const uint64_t first = down(offset), last = up(end);
  if (first == offset && last == end) return below_->read(offset, buffer);
  if (last - first <= kBounceLimit) {
    std::vector<uint8_t> bounce(last - first);
    QK_TRY(below_->read(first, bounce));
    std::memcpy(buffer.data(), bounce.data() + (offset - first), buffer.size());
    return {};
  }
  // Large: the partial edges through one sector each, the middle in place.
  std::vector<uint8_t> edge(sector_);
  const uint64_t whole_begin = up(offset), whole_end = down(end);
  if (whole_begin != offset) {
    QK_TRY(below_->read(first, edge));
    std::memcpy(buffer.data(), edge.data() + (offset - first), whole_begin - offset);
  }
  QK_TRY(below_->read(whole_begin, buffer.subspan(whole_begin - offset, whole_end - whole_begin)));
  if (whole_end != end) {
    QK_TRY(below_->read(whole_end, edge));
    std::memcpy(buffer.data() + (whole_end - offset), edge.data(), end - whole_end);
  }
  return {};
}

// Registers a write's sectors for its scope, once no write in flight
// conflicts with it: one of them read-modify-writes a sector the other
// covers.
class AlignedDevice::Registration {
 public:
  Registration(AlignedDevice& device, InFlight w) : device_(device) {
    MutexLock lock(device_.mutex_);
    while (device_.conflicts_locked(w)) device_.done_.wait(lock.native());
    device_.in_flight_.push_back(w);
    w_ = w;
  }
  ~Registration() {
    {
      MutexLock lock(device_.mutex_);
      auto& v = device_.in_flight_;
      auto it = std::find(v.begin(), v.end(), w_);  // an equal one is as good
      *it = v.back();
      v.pop_back();
    }
    device_.done_.notify_all();
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

 private:
  AlignedDevice& device_;
  InFlight w_{};
};

bool AlignedDevice::conflicts_locked(const InFlight& w) const {
  auto edits = [](const InFlight& a, const InFlight& b) {  // a read-modify-writes in b
    for (uint64_t e : a.edges)
      if (e != kNoSector && e >= b.first && e < b.end) return true;
    return false;
  };
  for (const InFlight& other : in_flight_)
    if (edits(w, other) || edits(other, w)) return true;
  return false;
}

template <typename Op>
Status AlignedDevice::whole(uint64_t offset, uint64_t length, Op op) {
  Registration r(*this, InFlight{offset / sector_, (offset + length) / sector_,
                                 {kNoSector, kNoSector}});
  return op();
}

Status AlignedDevice::patch(uint64_t offset, uint64_t length, const uint8_t* data, bool fua) {
  const uint64_t end = offset + length;
  const uint64_t first = down(offset), last = up(end);
  const bool head_partial = offset != first, tail_partial = end != last;
  const uint64_t head = first / sector_, tail = last / sector_ - 1;
  Registration r(*this, InFlight{head, tail + 1,
                                 {head_partial ? head : kNoSector,
                                  tail_partial ? tail : kNoSector}});
  std::vector<uint8_t> bounce(last - first);
  if (head_partial) QK_TRY(below_->read(first, ByteSpan(bounce.data(), sector_)));
  if (tail_partial && (tail != head || !head_partial))
    QK_TRY(below_->read(last - sector_, ByteSpan(bounce.data() + (last - sector_ - first), sector_)));
  if (data)
    std::memcpy(bounce.data() + (offset - first), data, length);
  else
    std::memset(bounce.data() + (offset - first), 0, length);
  return below_->write(first, bounce, WriteFlags{fua});
}

template <typename Middle>
Status AlignedDevice::split(uint64_t offset, uint64_t length, const uint8_t* data, bool fua,
                            Middle middle) {
  const uint64_t end = offset + length;
  const uint64_t whole_begin = up(offset), whole_end = down(end);
  if (whole_begin >= whole_end) return patch(offset, length, data, fua);
  auto at = [&](uint64_t pos) { return data ? data + (pos - offset) : nullptr; };
  if (whole_begin != offset) QK_TRY(patch(offset, whole_begin - offset, at(offset), fua));
  QK_TRY(whole(whole_begin, whole_end - whole_begin, [&] { return middle(whole_begin, whole_end); }));
  if (whole_end != end) QK_TRY(patch(whole_end, end - whole_end, at(whole_end), fua));
  return {};
}

Status AlignedDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check_request(info(), offset, data.size(), true, "write"));
  const uint64_t end = offset + data.size();
  const bool aligned = down(offset) == offset && down(end) == end;
  // Small and unaligned: one read-modify-write of all its sectors.
  if (!aligned && up(end) - down(offset) <= kBounceLimit)
    return patch(offset, data.size(), data.data(), flags.fua);
  return split(offset, data.size(), data.data(), flags.fua, [&](uint64_t b, uint64_t e) {
    return below_->write(b, data.subspan(b - offset, e - b), flags);
  });
}

Status AlignedDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check_request(info(), offset, length, true, "write_zeroes"));
  if (flags.fast_only && (down(offset) != offset || down(offset + length) != offset + length))
    return make_error(ENOTSUP, "write_zeroes: a range not aligned to the device's " +
                                   std::to_string(sector_) + "-byte sectors is not zeroed fast");
  return split(offset, length, nullptr, flags.fua, [&](uint64_t b, uint64_t e) {
    return below_->write_zeroes(b, e - b, flags);
  });
}

Status AlignedDevice::discard(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, true, "discard"));
  // A discarded range reads as zeroes: partial edges are written as such.
  return split(offset, length, nullptr, false,
               [&](uint64_t b, uint64_t e) { return below_->discard(b, e - b); });
}

Result<std::vector<Extent>> AlignedDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, false, "extents"));
  if (length == 0) return std::vector<Extent>{};
  const uint64_t end = offset + length;
  // A sector's kind is its bytes' kind, so the sectors' extents, clipped to
  // the asked range, describe it.
  uint64_t pos = down(offset);
  const uint64_t last = up(end);
  std::vector<Extent> out;
  while (out.empty() && pos < last) {
    QK_ASSIGN_OR_RETURN(auto below, below_->extents(pos, last - pos));
    if (below.empty())
      return make_error(EIO, "extents: the device reported none at offset " + std::to_string(pos));
    for (const Extent& e : below) {
      const uint64_t b = std::max(e.offset, offset), f = std::min(e.offset + e.length, end);
      if (b < f) out.push_back(Extent{b, f - b, e.kind});
      pos = e.offset + e.length;
    }
  }
  return out;
}

}  // namespace qcowkit
