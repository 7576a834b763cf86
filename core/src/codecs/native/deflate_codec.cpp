#include "codecs/native/deflate_codec.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <new>
#include <string>

namespace qcowkit::codecs {
namespace {

constexpr int kMemLevel = 9;      // QEMU's choice too

std::string zlib_message(const z_stream& zs, int rc) {
  if (zs.msg) return zs.msg;
  return "zlib error " + std::to_string(rc);
}

// Ends the inflate or deflate state however the function returns.
struct InflateGuard {
  z_stream* zs;
  ~InflateGuard() { inflateEnd(zs); }
};
struct DeflateGuard {
  z_stream* zs;
  ~DeflateGuard() { deflateEnd(zs); }
};

}  // namespace

Status DeflateCodec::decompress(ConstByteSpan input, ByteSpan output) const {
  if (input.size() > UINT_MAX || output.size() > UINT_MAX)
    return make_error(EINVAL, "deflate: buffers over 4 GiB are not supported");
  z_stream zs{};
  if (int rc = inflateInit2(&zs, window_bits_); rc != Z_OK)
    return make_error(ENOMEM, "deflate: cannot start a decoder: " + zlib_message(zs, rc));
  InflateGuard guard{&zs};
  zs.next_in = const_cast<Bytef*>(input.data());  // zlib's API is not const-correct
  zs.avail_in = static_cast<uInt>(input.size());
  zs.next_out = output.data();
  zs.avail_out = static_cast<uInt>(output.size());

  int rc = inflate(&zs, Z_FINISH);
  const auto where = [&] {
    return " after " + std::to_string(zs.total_in) + " input bytes and " +
           std::to_string(zs.total_out) + " of " + std::to_string(output.size()) +
           " output bytes";
  };
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
    return make_error(EIO, "deflate: corrupt data" + where() + ": " + zlib_message(zs, rc));
  if (rc == Z_MEM_ERROR) return make_error(ENOMEM, "deflate: out of memory while decoding");
  if (zs.avail_out != 0)
    return make_error(EIO, "deflate: stream ends early (truncated?)" + where());
  if (rc == Z_STREAM_END) return {};

  // The output is full but the stream has not ended. Decoding is complete
  // when the output is full (as in QEMU), unless the stream would go on to
  // produce more bytes: that is a bomb, or the wrong size.
  uint8_t extra = 0;
  zs.next_out = &extra;
  zs.avail_out = 1;
  rc = inflate(&zs, Z_FINISH);
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
    return make_error(EIO, "deflate: corrupt data" + where() + ": " + zlib_message(zs, rc));
  if (zs.avail_out == 0)
    return make_error(EIO, "deflate: stream holds more than the expected " +
                               std::to_string(output.size()) + " bytes");
  return {};
}

Result<std::vector<uint8_t>> DeflateCodec::compress(ConstByteSpan input, size_t max_size) const {
  if (input.size() > UINT_MAX)
    return make_error(EINVAL, "deflate: inputs over 4 GiB are not supported");
  if (max_size == 0) return std::vector<uint8_t>();
  z_stream zs{};
  if (int rc = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits_, kMemLevel,
                            Z_DEFAULT_STRATEGY);
      rc != Z_OK)
    return make_error(ENOMEM, "deflate: cannot start an encoder: " + zlib_message(zs, rc));
  DeflateGuard guard{&zs};
  // Anything of max_size bytes or more is useless to the caller. zlib only
  // reports the end of the stream while it has output space left over, so
  // the buffer is one byte larger than the largest useful result.
  const size_t capacity =
      std::min<size_t>(max_size, deflateBound(&zs, static_cast<uLong>(input.size())) + 1);
  std::vector<uint8_t> out;
  try {
    out.resize(capacity);
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, "deflate: cannot allocate " + std::to_string(capacity) + " bytes");
  }
  zs.next_in = const_cast<Bytef*>(input.data());
  zs.avail_in = static_cast<uInt>(input.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(capacity);
  const int rc = deflate(&zs, Z_FINISH);
  if (rc == Z_STREAM_END) {  // then total_out < capacity <= max_size
    out.resize(zs.total_out);
    return out;
  }
  if (rc == Z_OK || rc == Z_BUF_ERROR) return std::vector<uint8_t>();  // did not fit
  return make_error(EIO, "deflate: compression failed: " + zlib_message(zs, rc));
}

}  // namespace qcowkit::codecs
