#include "next_device.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

namespace qcowkit::filter {

namespace {

// NBD requests carry 32-bit lengths; stay well below that.
constexpr uint64_t kMaxRequest = 32u << 20;

// "plugin WHAT failed: ..." with the errno's text.
Error plugin_error(const std::string& what, int err) {
  if (err <= 0) err = EIO;
  return make_error(err, "plugin " + what + " failed: " + std::strerror(err));
}

// The same for a request on a byte range.
Error plugin_error(const char* what, uint64_t offset, uint64_t length, int err) {
  return plugin_error(std::string(what) + " of " + std::to_string(length) + " bytes at offset " +
                          std::to_string(offset),
                      err);
}

// Locks `m` only when asked to.
class MaybeLock {
 public:
  MaybeLock(std::mutex& m, bool lock) : m_(lock ? &m : nullptr) { if (m_) m_->lock(); }
  ~MaybeLock() { if (m_) m_->unlock(); }
  MaybeLock(const MaybeLock&) = delete;
  MaybeLock& operator=(const MaybeLock&) = delete;

 private:
  std::mutex* m_;
};

}  // namespace

Result<std::unique_ptr<NextDevice>> NextDevice::open(nbdkit_next* next, bool serialize) {
  const int64_t size = next->get_size(next);
  if (size < 0) return make_error(EIO, "plugin get_size failed");
  NextCaps caps;
  const int w = next->can_write(next), f = next->can_flush(next), t = next->can_trim(next),
            z = next->can_zero(next), fz = next->can_fast_zero(next), fua = next->can_fua(next),
            e = next->can_extents(next), mc = next->can_multi_conn(next),
            rot = next->is_rotational(next);
  if (w < 0 || f < 0 || t < 0 || z < 0 || fz < 0 || fua < 0 || e < 0 || mc < 0 || rot < 0)
    return make_error(EIO, "plugin failed to say what it can do (can_* returned an error)");
  caps.can_write = w;
  caps.can_flush = f;
  caps.can_trim = t;
  caps.can_zero = z;
  caps.can_fast_zero = fz;
  caps.can_fua = fua;
  caps.can_extents = e;
  caps.can_multi_conn = mc;
  caps.is_rotational = rot;
  uint32_t minimum = 0, preferred = 0, maximum = 0;
  if (next->block_size(next, &minimum, &preferred, &maximum) == -1) minimum = 0;
  const uint32_t sector = minimum > 0 && minimum <= 65536 ? minimum : 1;
  return std::unique_ptr<NextDevice>(
      new NextDevice(next, caps, static_cast<uint64_t>(size), sector, serialize));
}

NextDevice::NextDevice(nbdkit_next* next, NextCaps caps, uint64_t size, uint32_t sector,
                       bool serialize)
    : next_(next), caps_(caps), size_(size), sector_size_(sector), serialize_(serialize) {}

DeviceInfo NextDevice::info() const { return DeviceInfo{size_, sector_size_, !caps_.can_write}; }

Status NextDevice::check(uint64_t offset, uint64_t length, bool mutating, const char* op) const {
  if (closed_) return make_error(EBADF, std::string(op) + ": plugin device is closed");
  return check_request(info(), offset, length, mutating, op);
}

Status NextDevice::read(uint64_t offset, ByteSpan buffer) {
  QK_TRY(check(offset, buffer.size(), false, "read"));
  for (uint64_t done = 0; done < buffer.size();) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxRequest, buffer.size() - done));
    int err = 0;
    MaybeLock lock(serial_, serialize_);
    if (next_->pread(next_, buffer.data() + done, n, offset + done, 0, &err) == -1)
      return plugin_error("read", offset + done, n, err);
    done += n;
  }
  return {};
}

Status NextDevice::flush_after(bool fua) {
  if (fua && caps_.can_fua == NBDKIT_FUA_NONE) return flush();
  return {};
}

Status NextDevice::write(uint64_t offset, ConstByteSpan data, WriteFlags flags) {
  QK_TRY(check(offset, data.size(), true, "write"));
  const uint32_t fua = flags.fua && caps_.can_fua != NBDKIT_FUA_NONE ? NBDKIT_FLAG_FUA : 0;
  for (uint64_t done = 0; done < data.size();) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxRequest, data.size() - done));
    int err = 0;
    MaybeLock lock(serial_, serialize_);
    if (next_->pwrite(next_, data.data() + done, n, offset + done, fua, &err) == -1)
      return plugin_error("write", offset + done, n, err);
    done += n;
  }
  return flush_after(flags.fua);
}

Status NextDevice::flush() {
  if (closed_) return make_error(EBADF, "flush: plugin device is closed");
  if (!caps_.can_flush) return {};
  int err = 0;
  MaybeLock lock(serial_, serialize_);
  if (next_->flush(next_, 0, &err) == -1) return plugin_error("flush", err);
  return {};
}

Status NextDevice::discard(uint64_t offset, uint64_t length) {
  QK_TRY(check(offset, length, true, "discard"));
  // The BlockDevice contract says a discarded range reads as zeroes, which
  // NBD trim does not promise: zero with may-trim does.
  if (caps_.can_zero != NBDKIT_ZERO_NONE) return write_zeroes(offset, length, ZeroFlags{true, false, false});
  if (!caps_.can_trim) return {};
  for (uint64_t done = 0; done < length;) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxRequest, length - done));
    int err = 0;
    MaybeLock lock(serial_, serialize_);
    if (next_->trim(next_, n, offset + done, 0, &err) == -1)
      return plugin_error("trim", offset + done, n, err);
    done += n;
  }
  return {};
}

Status NextDevice::write_zeroes(uint64_t offset, uint64_t length, ZeroFlags flags) {
  QK_TRY(check(offset, length, true, "write_zeroes"));
  if (caps_.can_zero == NBDKIT_ZERO_NONE) {
    if (flags.fast_only) return make_error(ENOTSUP, "write_zeroes: the plugin cannot zero fast");
    std::vector<uint8_t> zeroes(std::min<uint64_t>(length, 1u << 20), 0);
    for (uint64_t done = 0; done < length;) {
      const uint64_t n = std::min<uint64_t>(zeroes.size(), length - done);
      QK_TRY(write(offset + done, ConstByteSpan(zeroes.data(), n), WriteFlags{}));
      done += n;
    }
    return flush_after(flags.fua);
  }
  if (flags.fast_only && !caps_.can_fast_zero)
    return make_error(ENOTSUP, "write_zeroes: the plugin cannot zero fast");
  uint32_t f = 0;
  if (flags.may_trim) f |= NBDKIT_FLAG_MAY_TRIM;
  if (flags.fast_only) f |= NBDKIT_FLAG_FAST_ZERO;
  if (flags.fua && caps_.can_fua != NBDKIT_FUA_NONE) f |= NBDKIT_FLAG_FUA;
  for (uint64_t done = 0; done < length;) {
    const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxRequest, length - done));
    int err = 0;
    MaybeLock lock(serial_, serialize_);
    if (next_->zero(next_, n, offset + done, f, &err) == -1)
      return plugin_error("zero", offset + done, n, err);
    done += n;
  }
  return flush_after(flags.fua);
}

Status NextDevice::resize(uint64_t) {
  return make_error(ENOTSUP, "resize: an nbdkit plugin cannot be resized through a filter");
}

Result<std::vector<Extent>> NextDevice::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check(offset, length, false, "extents"));
  if (length == 0) return std::vector<Extent>{};
  if (!caps_.can_extents) return std::vector<Extent>{Extent{offset, length, ExtentKind::data}};
  const uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(kMaxRequest * 64, length));
  nbdkit_extents* list = nbdkit_extents_new(offset, offset + n);
  if (!list) return make_error(ENOMEM, "extents: cannot allocate the extent list");
  int err = 0;
  int r;
  {
    MaybeLock lock(serial_, serialize_);
    r = next_->extents(next_, n, offset, 0, list, &err);
  }
  if (r == -1) {
    nbdkit_extents_free(list);
    return plugin_error("extents", offset, n, err);
  }
  std::vector<Extent> out;
  uint64_t pos = offset;
  const size_t count = nbdkit_extents_count(list);
  for (size_t i = 0; i < count && pos < offset + n; ++i) {
    const nbdkit_extent e = nbdkit_get_extent(list, i);
    if (e.offset != pos || e.length == 0) break;  // nbdkit keeps them contiguous
    const uint64_t len = std::min<uint64_t>(e.length, offset + n - pos);
    // A hole that does not read as zero is no use to a copier: call it data.
    ExtentKind kind = ExtentKind::data;
    if (e.type & NBDKIT_EXTENT_ZERO)
      kind = (e.type & NBDKIT_EXTENT_HOLE) ? ExtentKind::hole : ExtentKind::zero;
    if (!out.empty() && out.back().kind == kind)
      out.back().length += len;
    else
      out.push_back(Extent{pos, len, kind});
    pos += len;
  }
  nbdkit_extents_free(list);
  if (out.empty()) out.push_back(Extent{offset, n, ExtentKind::data});  // knows nothing: data
  return out;
}

Status NextDevice::close() {
  if (closed_) return {};
  Status st = flush();
  closed_ = true;
  return st;
}

}  // namespace qcowkit::filter
