#include "codecs/native/zstd_codec.hpp"

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <new>
#include <string>

namespace qcowkit::codecs {
namespace {

// Frames may ask for a history window up to the output size, and never less
// than this: 2 MiB is qcow2's largest cluster and zstd's usual window at
// default levels, so frames from any encoder decode, while a frame claiming
// a huge window cannot make us allocate it.
constexpr int kMinWindowLog = 21;

struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// One context per thread: contexts are not thread-safe but are costly to
// create for every cluster.
ZSTD_DCtx* thread_dctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  return dctx.get();
}
ZSTD_CCtx* thread_cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  return cctx.get();
}

int window_log_for(size_t output_size) {
  int log = 0;
  while (log < 63 && (uint64_t{1} << log) < output_size) ++log;
  const ZSTD_bounds bounds = ZSTD_dParam_getBounds(ZSTD_d_windowLogMax);
  return std::clamp(std::max(log, kMinWindowLog), bounds.lowerBound, bounds.upperBound);
}

}  // namespace

Status ZstdCodec::decompress(ConstByteSpan input, ByteSpan output) const {
  ZSTD_DCtx* dctx = thread_dctx();
  if (!dctx) return make_error(ENOMEM, "zstd: cannot create a decoder");
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
  if (size_t rc = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, window_log_for(output.size()));
      ZSTD_isError(rc))
    return make_error(EIO, std::string("zstd: cannot limit the window: ") + ZSTD_getErrorName(rc));

  ZSTD_inBuffer in{input.data(), input.size(), 0};
  ZSTD_outBuffer out{output.data(), output.size(), 0};
  const auto where = [&] {
    return " after " + std::to_string(in.pos) + " input bytes and " + std::to_string(out.pos) +
           " of " + std::to_string(output.size()) + " output bytes";
  };
  size_t hint = 1;  // 0 once a frame is completely decoded and flushed
  while (out.pos < out.size) {
    const size_t in_before = in.pos, out_before = out.pos;
    hint = ZSTD_decompressStream(dctx, &out, &in);
    if (ZSTD_isError(hint))
      return make_error(EIO, std::string("zstd: corrupt data") + where() + ": " +
                                 ZSTD_getErrorName(hint));
    if (in.pos == in_before && out.pos == out_before)
      return make_error(EIO, "zstd: stream ends early (truncated?)" + where());
  }
  // The output is full. The frame being decoded must end here without
  // producing another byte; later bytes (padding, other frames) are ignored.
  while (hint != 0) {
    uint8_t extra = 0;
    ZSTD_outBuffer probe{&extra, 1, 0};
    const size_t in_before = in.pos;
    hint = ZSTD_decompressStream(dctx, &probe, &in);
    if (ZSTD_isError(hint))
      return make_error(EIO, std::string("zstd: corrupt data") + where() + ": " +
                                 ZSTD_getErrorName(hint));
    if (probe.pos != 0)
      return make_error(EIO, "zstd: stream holds more than the expected " +
                                 std::to_string(output.size()) + " bytes");
    if (hint != 0 && in.pos == in_before)
      return make_error(EIO, "zstd: frame is truncated" + where());
  }
  return {};
}

Result<std::vector<uint8_t>> ZstdCodec::compress(ConstByteSpan input, size_t max_size) const {
  if (max_size == 0) return std::vector<uint8_t>();
  ZSTD_CCtx* cctx = thread_cctx();
  if (!cctx) return make_error(ENOMEM, "zstd: cannot create an encoder");
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZSTD_CLEVEL_DEFAULT);
  // zstd needs some slack beyond the result to finish a frame, so a buffer
  // of exactly max_size - 1 bytes could refuse a result that fits. Encode
  // into a buffer that always suffices, then keep the result only if smaller.
  const size_t capacity = ZSTD_compressBound(input.size());
  if (ZSTD_isError(capacity))
    return make_error(EINVAL,
                      "zstd: input of " + std::to_string(input.size()) + " bytes is too large");
  std::vector<uint8_t> out;
  try {
    out.resize(capacity);
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, "zstd: cannot allocate " + std::to_string(capacity) + " bytes");
  }
  // One call with the whole input: the frame records the content size, so
  // the encoder keeps its window no larger than the data.
  const size_t n = ZSTD_compress2(cctx, out.data(), capacity, input.data(), input.size());
  if (ZSTD_isError(n))
    return make_error(EIO, std::string("zstd: compression failed: ") + ZSTD_getErrorName(n));
  if (n >= max_size) return std::vector<uint8_t>();
  out.resize(n);
  return out;
}

}  // namespace qcowkit::codecs
