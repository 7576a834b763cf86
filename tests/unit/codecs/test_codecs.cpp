// Native deflate and zstd codecs: round trips, compatibility with streams
// made directly by zlib and libzstd the way QEMU makes them, and every kind
// of bad input (truncated, corrupt, bombs, wrong sizes).
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader, to check the test frame
#include <zstd.h>

#include <cstring>
#include <string>

#include "qcowkit/codec.hpp"
#include "test_support.hpp"

using namespace qcowkit;
using namespace qcowkit::test;

namespace {

constexpr size_t KiB = 1024;

// Compressible but not trivial: words from a small vocabulary.
std::vector<uint8_t> text_bytes(size_t n, uint64_t seed) {
  static const char* words[] = {"qcow2 ", "cluster ", "refcount ", "L2 table ", "zero ",
                                "snapshot ", "backing ", "header "};
  std::vector<uint8_t> out;
  std::mt19937_64 rng(seed);
  while (out.size() < n) {
    const char* w = words[rng() % 8];
    out.insert(out.end(), w, w + std::strlen(w));
  }
  out.resize(n);
  return out;
}

// Incompressible: every byte value equally likely.
std::vector<uint8_t> noise_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> out(n);
  std::mt19937_64 rng(seed);
  for (auto& b : out) b = static_cast<uint8_t>(rng() >> 56);
  return out;
}

const Codec& codec(CompressionType type) {
  const Codec* c = builtin_codecs().get(type);
  REQUIRE(c != nullptr);
  return *c;
}

std::vector<uint8_t> compressed(CompressionType type, const std::vector<uint8_t>& data) {
  auto out = codec(type).compress(data, data.size());
  REQUIRE_OK(out);
  REQUIRE_FALSE(out->empty());
  return std::move(out).value();
}

Status decode(CompressionType type, const std::vector<uint8_t>& input, size_t output_size) {
  std::vector<uint8_t> out(output_size);
  return codec(type).decompress(input, out);
}

// Raw deflate with a 4 KiB window, made with zlib directly (QEMU's settings).
std::vector<uint8_t> zlib_raw_deflate(const std::vector<uint8_t>& data, int window_bits = -12) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 9,
                       Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, data.size()));
  zs.next_in = const_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::vector<uint8_t> zstd_frame(const std::vector<uint8_t>& data, int level = 3) {
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

}  // namespace

TEST_CASE("codecs: names as qemu-img spells them, both built in", "[codecs]") {
  REQUIRE(std::string(to_string(CompressionType::deflate)) == "zlib");
  REQUIRE(std::string(to_string(CompressionType::zstd)) == "zstd");
  REQUIRE(builtin_codecs().deflate != nullptr);
  REQUIRE(builtin_codecs().zstd != nullptr);
  REQUIRE(builtin_codecs().get(CompressionType::zstd) == builtin_codecs().zstd);
  REQUIRE(builtin_codecs().get(CompressionType::deflate) == builtin_codecs().deflate);
}

TEST_CASE("codecs: round trips", "[codecs]") {
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    for (size_t size : {size_t{512}, 64 * KiB, 2048 * KiB}) {
      INFO("size " << size);
      for (const auto& data : {text_bytes(size, size), std::vector<uint8_t>(size, 0)}) {
        const auto packed = compressed(type, data);
        REQUIRE(packed.size() < data.size());
        std::vector<uint8_t> back(size, 0xee);
        REQUIRE_OK(codec(type).decompress(packed, back));
        REQUIRE(back == data);
      }
    }
  }
}

TEST_CASE("codecs: trailing bytes after the stream are allowed (sector padding)", "[codecs]") {
  const auto data = text_bytes(64 * KiB, 1);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    for (uint8_t fill : {uint8_t{0}, uint8_t{0xff}}) {
      auto padded = compressed(type, data);
      padded.resize(padded.size() + 511, fill);
      std::vector<uint8_t> back(data.size());
      REQUIRE_OK(codec(type).decompress(padded, back));
      REQUIRE(back == data);
    }
  }
}

TEST_CASE("deflate: raw deflate with a 4 KiB window, as QEMU reads and writes it",
          "[codecs][deflate]") {
  const auto data = text_bytes(64 * KiB, 2);
  // What QEMU writes, we read.
  std::vector<uint8_t> back(data.size());
  REQUIRE_OK(codec(CompressionType::deflate).decompress(zlib_raw_deflate(data), back));
  REQUIRE(back == data);
  // What we write, a raw 4 KiB-window inflate (QEMU's reader) reads.
  const auto ours = compressed(CompressionType::deflate, data);
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, -12) == Z_OK);
  std::vector<uint8_t> out(data.size());
  zs.next_in = const_cast<Bytef*>(ours.data());
  zs.avail_in = static_cast<uInt>(ours.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(inflate(&zs, Z_FINISH) == Z_STREAM_END);
  inflateEnd(&zs);
  REQUIRE(out == data);
  // And it carries no zlib header: zlib's own uncompress() refuses it.
  uLongf out_len = out.size();
  REQUIRE(uncompress(out.data(), &out_len, ours.data(), ours.size()) != Z_OK);
}

TEST_CASE("codecs: truncated streams fail with EIO", "[codecs]") {
  const auto data = text_bytes(64 * KiB, 4);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    const auto packed = compressed(type, data);
    for (size_t keep : {size_t{0}, size_t{1}, packed.size() / 2, packed.size() - 8}) {
      INFO("keeping " << keep << " of " << packed.size());
      auto st = decode(type, std::vector<uint8_t>(packed.begin(), packed.begin() + keep),
                       data.size());
      REQUIRE_FALSE(st.ok());
      REQUIRE(st.error().code == EIO);
    }
  }
}

TEST_CASE("codecs: corrupt streams fail with EIO", "[codecs]") {
  const auto data = text_bytes(64 * KiB, 5);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    REQUIRE(decode(type, std::vector<uint8_t>(300, 0xff), 64 * KiB).error().code == EIO);
    REQUIRE(decode(type, noise_bytes(4096, 6), 64 * KiB).error().code == EIO);
    // Neither format carries a checksum the way qcow2 stores them, so a
    // flipped byte may decode into wrong data; but every failure must be
    // EIO with a message (never a crash), and most flips must be caught.
    auto packed = compressed(type, data);
    int failures = 0;
    for (size_t at = 0; at < packed.size(); at += packed.size() / 16 + 1) {
      auto broken = packed;
      broken[at] ^= 0x5a;
      std::vector<uint8_t> out(data.size());
      auto st = codec(type).decompress(broken, out);
      if (!st.ok()) {
        REQUIRE(st.error().code == EIO);
        REQUIRE_FALSE(st.error().message.empty());
        ++failures;
      }
    }
    REQUIRE(failures > 0);
  }
}

TEST_CASE("codecs: bombs, streams holding more than the output, fail with EIO", "[codecs]") {
  const std::vector<uint8_t> zeroes(1024 * KiB, 0);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    auto st = decode(type, compressed(type, zeroes), 64 * KiB);
    REQUIRE(st.error().code == EIO);
    INFO(st.error().message);
    REQUIRE(st.error().message.find("more than") != std::string::npos);
    // One byte too many is as wrong as a megabyte.
    const auto data = text_bytes(64 * KiB + 1, 7);
    REQUIRE(decode(type, compressed(type, data), 64 * KiB).error().code == EIO);
  }
}

TEST_CASE("zstd: a frame claiming a huge window is refused, not allocated", "[codecs][zstd]") {
  // A streaming encoder that does not know the input size keeps the window
  // it was told to use: this 4 KiB frame declares a 128 MiB window.
  const auto data = text_bytes(4 * KiB, 13);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  REQUIRE(cctx != nullptr);
  REQUIRE_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 27)));
  std::vector<uint8_t> frame(ZSTD_compressBound(data.size()) + 64);
  ZSTD_outBuffer out{frame.data(), frame.size(), 0};
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  REQUIRE_FALSE(ZSTD_isError(ZSTD_compressStream2(cctx, &out, &in, ZSTD_e_continue)));
  ZSTD_inBuffer none{nullptr, 0, 0};
  REQUIRE(ZSTD_compressStream2(cctx, &out, &none, ZSTD_e_end) == 0);
  ZSTD_freeCCtx(cctx);
  frame.resize(out.pos);
  ZSTD_frameHeader header{};
  REQUIRE(ZSTD_getFrameHeader(&header, frame.data(), frame.size()) == 0);
  REQUIRE(header.windowSize == (uint64_t{1} << 27));

  auto st = decode(CompressionType::zstd, frame, data.size());
  REQUIRE(st.error().code == EIO);
  INFO(st.error().message);
  REQUIRE(st.error().message.find("memory") != std::string::npos);  // zstd's own words
}

TEST_CASE("zstd: several frames decode into one output", "[codecs][zstd]") {
  const auto first = text_bytes(24 * KiB, 8), second = text_bytes(40 * KiB, 9);
  auto input = zstd_frame(first);
  const auto tail = zstd_frame(second);
  input.insert(input.end(), tail.begin(), tail.end());
  std::vector<uint8_t> out(64 * KiB);
  REQUIRE_OK(codec(CompressionType::zstd).decompress(input, out));
  REQUIRE(std::equal(first.begin(), first.end(), out.begin()));
  REQUIRE(std::equal(second.begin(), second.end(), out.begin() + first.size()));
  // A second frame that overflows the output is a bomb too.
  REQUIRE(decode(CompressionType::zstd, input, 48 * KiB).error().code == EIO);
  // A missing second frame leaves the output short.
  REQUIRE(decode(CompressionType::zstd, zstd_frame(first), 64 * KiB).error().code == EIO);
}

TEST_CASE("codecs: the output size must match exactly", "[codecs]") {
  const auto data = text_bytes(64 * KiB, 10);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    const auto packed = compressed(type, data);
    REQUIRE_OK(decode(type, packed, data.size()));
    auto longer = decode(type, packed, data.size() + 512);
    REQUIRE(longer.error().code == EIO);
    INFO(longer.error().message);
    REQUIRE(longer.error().message.find("early") != std::string::npos);
    REQUIRE(decode(type, packed, data.size() - 512).error().code == EIO);
    // An empty input decodes to an empty output only.
    auto empty = codec(type).compress({}, 100);
    REQUIRE_OK(empty);
    REQUIRE_FALSE(empty->empty());
    REQUIRE_OK(decode(type, *empty, 0));
    REQUIRE(decode(type, *empty, 512).error().code == EIO);
  }
}

TEST_CASE("codecs: compress returns empty unless the result is smaller than max_size",
          "[codecs]") {
  const auto noise = noise_bytes(64 * KiB, 11);
  const auto text = text_bytes(64 * KiB, 12);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    auto r = codec(type).compress(noise, noise.size());
    REQUIRE_OK(r);
    REQUIRE(r->empty());  // random bytes do not shrink
    const size_t packed_size = compressed(type, text).size();
    r = codec(type).compress(text, packed_size);  // not smaller: equal
    REQUIRE_OK(r);
    REQUIRE(r->empty());
    r = codec(type).compress(text, packed_size + 1);
    REQUIRE_OK(r);
    REQUIRE(r->size() == packed_size);
    r = codec(type).compress(text, 0);
    REQUIRE_OK(r);
    REQUIRE(r->empty());
  }
}

TEST_CASE("codecs: mangled streams end in success or EIO, never worse", "[codecs]") {
  // Each round damages a real stream (cut, splice, overwrite) and decodes it
  // into a few output sizes; under ASan this also checks every access.
  std::mt19937_64 rng(42);
  for (auto type : {CompressionType::deflate, CompressionType::zstd}) {
    INFO(to_string(type));
    const auto data = text_bytes(16 * KiB, 14);
    const auto packed = compressed(type, data);
    for (int round = 0; round < 300; ++round) {
      auto input = packed;
      switch (rng() % 3) {
        case 0: input.resize(rng() % (input.size() + 1)); break;
        case 1:
          input.insert(input.begin() + rng() % input.size(), packed.begin(), packed.end());
          break;
        default:
          for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n; ++i)
            input[rng() % input.size()] = static_cast<uint8_t>(rng());
      }
      for (size_t out_size : {size_t{0}, size_t{1}, 16 * KiB, 64 * KiB}) {
        std::vector<uint8_t> out(out_size);
        auto st = codec(type).decompress(input, out);
        if (!st.ok()) REQUIRE(st.error().code == EIO);
      }
    }
  }
}
