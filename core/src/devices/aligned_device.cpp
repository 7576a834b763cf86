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
  const uint64_t first = offset - offset % sector_;
  const uint64_t last = (end + sector_ - 1) / sector_ * sector_;
  if (first == offset && last == end) return below_->read(offset, buffer);
  if (last - first <= kBounceLimit) {
    std::vector<uint8_t> bounce(last - first);
    QK_TRY(below_->read(first, bounce));
    std::memcpy(buffer.data(), bounce.data() + (offset - first), buffer.size());
    return {};
  }
  // Large: the partial edges through one sector each, the middle in place.
  std::vector<uint8_t> edge(sector_);
  uint64_t pos = offset;
  if (offset != first) {
    QK_TRY(below_->read(first, edge));
    const uint64_t n = first + sector_ - offset;
    std::memcpy(buffer.data(), edge.data() + (offset - first), n);
    pos += n;
  }
  const uint64_t middle_end = end - end % sector_;
  if (middle_end > pos)
    QK_TRY(below_->read(pos, buffer.subspan(pos - offset, middle_end - pos)));
  if (middle_end != end) {
    QK_TRY(below_->read(middle_end, edge));
    std::memcpy(buffer.data() + (middle_end - offset), edge.data(), end - middle_end);
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
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i].first == w_.first && v[i].end == w_.end && v[i].edges[0] == w_.edges[0] &&
            v[i].edges[1] == w_.edges[1]) {
          v[i] = v.back();
          v.pop_back();
          break;
        }
      }
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
  const uint64_t first = offset - offset % sector_;
  const uint64_t last = (end + sector_ - 1) / sector_ * sector_;
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

Status AlignedDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check_request(info(), offset, data.size(), true, "write"));
  const uint64_t end = offset + data.size();
  const uint64_t first = offset - offset % sector_;
  const uint64_t last = (end + sector_ - 1) / sector_ * sector_;
  if (first == offset && last == end)
    return whole(offset, data.size(), [&] { return below_->write(offset, data, flags); });
  if (last - first <= kBounceLimit) return patch(offset, data.size(), data.data(), flags.fua);
  // Large: each partial edge patched on its own, the middle written in place.
  const uint64_t head_end = offset == first ? offset : first + sector_;
  const uint64_t middle_end = end - end % sector_;
  if (head_end != offset) QK_TRY(patch(offset, head_end - offset, data.data(), flags.fua));
  if (middle_end > head_end)
    QK_TRY(whole(head_end, middle_end - head_end, [&] {
      return below_->write(head_end, data.subspan(head_end - offset, middle_end - head_end), flags);
    }));
  if (middle_end != end)
    QK_TRY(patch(middle_end, end - middle_end, data.data() + (middle_end - offset), flags.fua));
  return {};
}

Status AlignedDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check_request(info(), offset, length, true, "write_zeroes"));
  const uint64_t end = offset + length;
  const uint64_t first = offset - offset % sector_;
  const uint64_t last = (end + sector_ - 1) / sector_ * sector_;
  if (first == offset && last == end)
    return whole(offset, length, [&] { return below_->write_zeroes(offset, length, flags); });
  if (flags.fast_only)
    return make_error(ENOTSUP, "write_zeroes: a range not aligned to the device's " +
                                   std::to_string(sector_) + "-byte sectors is not zeroed fast");
  // Whole sectors are zeroed below; the partial edges are written.
  const uint64_t whole_begin = (offset + sector_ - 1) / sector_ * sector_;
  const uint64_t whole_end = end - end % sector_;
  if (whole_begin >= whole_end) return patch(offset, length, nullptr, flags.fua);
  if (whole_begin != offset) QK_TRY(patch(offset, whole_begin - offset, nullptr, flags.fua));
  QK_TRY(whole(whole_begin, whole_end - whole_begin, [&] {
    return below_->write_zeroes(whole_begin, whole_end - whole_begin, flags);
  }));
  if (whole_end != end) QK_TRY(patch(whole_end, end - whole_end, nullptr, flags.fua));
  return {};
}

Status AlignedDevice::discard(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, true, "discard"));
  const uint64_t end = offset + length;
  const uint64_t whole_begin = (offset + sector_ - 1) / sector_ * sector_;
  const uint64_t whole_end = end - end % sector_;
  // A discarded range reads as zeroes: partial edges are written as such.
  if (whole_begin >= whole_end) return patch(offset, length, nullptr, false);
  if (whole_begin != offset) QK_TRY(patch(offset, whole_begin - offset, nullptr, false));
  QK_TRY(whole(whole_begin, whole_end - whole_begin,
               [&] { return below_->discard(whole_begin, whole_end - whole_begin); }));
  if (whole_end != end) QK_TRY(patch(whole_end, end - whole_end, nullptr, false));
  return {};
}

Result<std::vector<Extent>> AlignedDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(info(), offset, length, false, "extents"));
  if (length == 0) return std::vector<Extent>{};
  const uint64_t end = offset + length;
  // A sector's kind is its bytes' kind, so the sectors' extents, clipped to
  // the asked range, describe it.
  uint64_t pos = offset - offset % sector_;
  const uint64_t last = (end + sector_ - 1) / sector_ * sector_;
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
