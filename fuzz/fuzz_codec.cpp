// fuzz_codec: compressed-cluster decoding with attacker-controlled streams
// and descriptors. Three modes, picked by the first byte:
//  * a stream straight into a codec (deflate or zstd) with a chosen output
//    size: must fail cleanly or fill exactly that many bytes;
//  * round trip: compressing the input and decoding it gives it back;
//  * an image whose first L2 entry is an arbitrary compressed descriptor and
//    whose tail is the stream: reads, map and check fail cleanly or succeed.
#include <memory>
#include <vector>

#include "fuzz_support.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;
using namespace qcowkit::fuzz;

namespace {

uint64_t load_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void store_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

void decode_stream(ByteReader& in, const Codec& codec) {
  // Log-uniform up to 2 MiB (the largest cluster): small outputs keep it fast.
  const unsigned bits = 9 + in.u8() % 13;
  const size_t out_size = 1 + in.below(uint64_t{1} << bits);
  auto stream = in.bytes(in.remaining());
  std::vector<uint8_t> out(out_size, 0xa5);
  (void)codec.decompress(ConstByteSpan(stream.data(), stream.size()), out);
}

void round_trip(ByteReader& in, const Codec& codec) {
  auto plain = in.bytes(in.remaining());
  if (plain.empty()) return;
  auto packed = codec.compress(ConstByteSpan(plain.data(), plain.size()), plain.size() + 64);
  require_ok(packed, "compress");
  if (packed->empty()) return;  // would not shrink
  std::vector<uint8_t> back(plain.size());
  require_ok(codec.decompress(*packed, back), "decompress what we compressed");
  require(std::equal(back.begin(), back.end(), plain.begin()), "round trip changed the data");
}

// Builds a small image whose cluster 0 is written (so L1[0] and an L2 table
// exist), then points L2[0] at an attacker descriptor and appends the stream.
void hostile_descriptor(ByteReader& in) {
  Qcow2CreateOptions create;
  const uint8_t shape = in.u8();
  static const uint32_t kClusterSizes[] = {512, 4096, 65536, 2u << 20};
  create.cluster_size = kClusterSizes[shape & 3];
  create.compression_type = shape & 4 ? CompressionType::zstd : CompressionType::deflate;
  create.size = 2 * uint64_t{create.cluster_size};
  auto disk = std::make_shared<MemoryDevice>(0);
  {
    auto image = Qcow2Image::create(disk, create);
    require_ok(image, "create");
    std::vector<uint8_t> data(create.cluster_size, 0x11);
    require_ok((*image)->write(0, data), "write cluster 0");
    require_ok((*image)->close(), "close");
  }
  uint8_t field[8];
  require_ok(disk->read(40, ByteSpan(field, 8)), "read l1_table_offset");
  const uint64_t l1_offset = load_be64(field);
  require_ok(disk->read(l1_offset, ByteSpan(field, 8)), "read L1[0]");
  const uint64_t l2_offset = load_be64(field) & 0x00fffffffffffe00ULL;
  // Descriptor: compressed bit, the rest as the input says; its byte offset
  // is aimed near the end of the file most of the time, where the stream is.
  const uint64_t file_end = disk->info().size;
  uint64_t descriptor = in.u64();
  const unsigned offset_bits = 62 - (__builtin_ctz(create.cluster_size) - 8);
  if (shape & 8) {
    const uint64_t mask = (uint64_t{1} << offset_bits) - 1;
    descriptor = (descriptor & ~mask) | ((file_end + (descriptor & 0x1ff)) & mask);
  }
  descriptor = (descriptor & ~(uint64_t{3} << 62)) | (uint64_t{1} << 62);
  store_be64(field, descriptor);
  require_ok(disk->write(l2_offset, ConstByteSpan(field, 8)), "patch L2[0]");
  auto stream = in.bytes(in.remaining());
  if (!stream.empty()) {
    require_ok(disk->resize(file_end + stream.size()), "grow file");
    require_ok(disk->write(file_end, ConstByteSpan(stream.data(), stream.size())), "append stream");
  }
  Qcow2OpenOptions options;
  options.read_only = (shape & 16) != 0;
  auto image = Qcow2Image::open(disk, options);
  if (!image.ok()) return;
  std::vector<uint8_t> out(create.cluster_size);
  (void)(*image)->read(0, out);
  (void)(*image)->map(0, create.size);
  (void)(*image)->check(RepairMode::none);
  if (!options.read_only) {
    // Writing into a cluster with a bad stream must fail cleanly or replace it.
    std::vector<uint8_t> part(512, 0x22);
    if ((*image)->write(512 % create.cluster_size, part).ok()) {
      std::vector<uint8_t> back(512);
      if ((*image)->read(512 % create.cluster_size, back).ok())
        require(back == part, "a write over a compressed cluster did not read back");
    }
  }
  (void)(*image)->close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return 0;
  ByteReader in(data, size);
  const uint8_t mode = in.u8();
  const CodecSet& codecs = builtin_codecs();
  const Codec* codec = codecs.get(mode & 1 ? CompressionType::zstd : CompressionType::deflate);
  switch ((mode >> 1) % 3) {
    case 0:
      if (codec) decode_stream(in, *codec);
      break;
    case 1:
      if (codec) round_trip(in, *codec);
      break;
    default:
      hostile_descriptor(in);
      break;
  }
  return 0;
}
