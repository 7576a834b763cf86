#include "serve/nbdkit/requests.hpp"

#include <cinttypes>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "serve/nbdkit/entry_guard.hpp"

namespace qcowkit::serve::nbdkit {
namespace {

// Runs one request under the guard; a failed Status becomes the log line
// and the errno.
template <class F>
int run(const char* name, const char* op, uint64_t offset, uint64_t length, int* err, F&& body) {
  return guarded(op, -1, err, [&]() -> int {
    Status st = body();
    if (st.ok()) return 0;
    *err = report(name, op, offset, length, st.error());
    return -1;
  });
}

uint32_t extent_type(ExtentKind kind) {
  switch (kind) {
    case ExtentKind::data: return 0;
    case ExtentKind::zero: return NBDKIT_EXTENT_ZERO;
    case ExtentKind::hole: return NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  }
  return 0;
}

Result<uint64_t> nbdkit_size(const std::string& value) {
  const int64_t size = nbdkit_parse_size(value.c_str());
  if (size < 0) return make_error(EINVAL, "'" + value + "' is not a size");
  return static_cast<uint64_t>(size);
}

Result<bool> nbdkit_bool(const std::string& value) {
  const int b = nbdkit_parse_bool(value.c_str());
  if (b < 0) return make_error(EINVAL, "'" + value + "' is not a boolean");
  return b != 0;
}

}  // namespace

int report(const char* name, const char* operation, uint64_t offset, uint64_t length,
           const Error& error) {
  nbdkit_error("%s: %s at offset %" PRIu64 " length %" PRIu64 ": %s", name, operation, offset,
               length, error.message.c_str());
  return error.code > 0 ? error.code : EIO;
}

int pread(ExportedImage& image, const char* name, void* buf, uint32_t count, uint64_t offset,
          int* err) {
  return run(name, "read", offset, count, err, [&] {
    return image.read(offset, ByteSpan(static_cast<uint8_t*>(buf), count));
  });
}

int pwrite(ExportedImage& image, const char* name, const void* buf, uint32_t count,
           uint64_t offset, uint32_t flags, int* err) {
  return run(name, "write", offset, count, err, [&] {
    return image.write(offset, ConstByteSpan(static_cast<const uint8_t*>(buf), count),
                       (flags & NBDKIT_FLAG_FUA) != 0);
  });
}

int flush(ExportedImage& image, const char* name, int* err) {
  return run(name, "flush", 0, 0, err, [&] { return image.flush(); });
}

int trim(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, uint32_t flags,
         int* err) {
  return run(name, "trim", offset, count, err,
             [&] { return image.trim(offset, count, (flags & NBDKIT_FLAG_FUA) != 0); });
}

int zero(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, uint32_t flags,
         int* err) {
  ZeroFlags zf;
  zf.may_trim = flags & NBDKIT_FLAG_MAY_TRIM;
  zf.fast_only = flags & NBDKIT_FLAG_FAST_ZERO;
  zf.fua = flags & NBDKIT_FLAG_FUA;
  return guarded("zero", -1, err, [&]() -> int {
    Status st = image.zero(offset, count, zf);
    if (st.ok()) return 0;
    // The client falls back to writing zeroes itself: not worth a log line.
    if (ExportedImage::is_fast_zero_refusal(zf, st.error())) *err = ENOTSUP;
    else *err = report(name, "zero", offset, count, st.error());
    return -1;
  });
}

int extents(ExportedImage& image, const char* name, uint32_t count, uint64_t offset,
            uint32_t flags, nbdkit_extents* list, int* err) {
  return run(name, "extents", offset, count, err, [&] {
    return image.extents(offset, count, (flags & NBDKIT_FLAG_REQ_ONE) != 0,
                         [&](const Extent& e) -> Status {
                           if (nbdkit_add_extent(list, e.offset, e.length, extent_type(e.kind)) == -1)
                             return make_error(errno ? errno : EIO, "cannot add an extent");
                           return {};
                         });
  });
}

int cache(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, int* err) {
  return run(name, "cache", offset, count, err, [&] { return image.cache(offset, count); });
}

int block_size(ExportedImage& image, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  int err = 0;
  return guarded("block_size", -1, &err, [&] {
    const BlockSizes b = image.block_sizes();
    *minimum = b.minimum;
    *preferred = b.preferred;
    *maximum = b.maximum;
    return 0;
  });
}

const ValueParsers& value_parsers() {
  static const ValueParsers parsers{nbdkit_size, nbdkit_bool};
  return parsers;
}

}  // namespace qcowkit::serve::nbdkit
