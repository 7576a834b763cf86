// Placeholder used only while the qcow2 engine (core/src/qcow2/) has not
// landed in this tree: every entry point fails with ENOTSUP so the module
// still links and its raw-image path can be built and tested.
// wasm/CMakeLists.txt drops this file as soon as the engine exists.
#include "qcowkit/qcow2.hpp"

namespace qcowkit {

class Qcow2Image::Impl {};

const char* to_string(CompressionType type) {
  return type == CompressionType::zstd ? "zstd" : "zlib";
}

namespace {
Error pending() { return make_error(ENOTSUP, "qcow2 support is not built into this module yet"); }
}  // namespace

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::create(std::shared_ptr<BlockDevice>,
                                                       const Qcow2CreateOptions&,
                                                       const Qcow2OpenOptions&) {
  return pending();
}
Result<std::unique_ptr<Qcow2Image>> Qcow2Image::open(std::shared_ptr<BlockDevice>,
                                                     const Qcow2OpenOptions&) {
  return pending();
}
Result<Qcow2Details> Qcow2Image::probe(BlockDevice&) { return pending(); }
bool Qcow2Image::looks_like_qcow2(BlockDevice& file) {
  if (file.info().size < 4) return false;
  uint8_t magic[4];
  if (!file.read(0, ByteSpan(magic, 4)).ok()) return false;
  return magic[0] == 'Q' && magic[1] == 'F' && magic[2] == 'I' && magic[3] == 0xfb;
}
Qcow2Image::Qcow2Image(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Qcow2Image::~Qcow2Image() = default;
DeviceInfo Qcow2Image::info() const { return {}; }
Status Qcow2Image::read(uint64_t, ByteSpan) { return pending(); }
Status Qcow2Image::write(uint64_t, ConstByteSpan, WriteFlags) { return pending(); }
Status Qcow2Image::flush() { return pending(); }
Status Qcow2Image::discard(uint64_t, uint64_t) { return pending(); }
Status Qcow2Image::write_zeroes(uint64_t, uint64_t, ZeroFlags) { return pending(); }
Status Qcow2Image::resize(uint64_t) { return pending(); }
Status Qcow2Image::resize(uint64_t, bool) { return pending(); }
Result<std::vector<Extent>> Qcow2Image::extents(uint64_t, uint64_t) { return pending(); }
Status Qcow2Image::close() { return {}; }
Status Qcow2Image::write_compressed(uint64_t, ConstByteSpan) { return pending(); }
Result<std::vector<MapEntry>> Qcow2Image::map(uint64_t, uint64_t) { return pending(); }
Result<CheckReport> Qcow2Image::check(RepairMode) { return pending(); }
Status Qcow2Image::compact() { return pending(); }
bool Qcow2Image::can_zero_fast(uint64_t, uint64_t) { return false; }
Qcow2Details Qcow2Image::details() const { return {}; }
uint32_t Qcow2Image::cluster_size() const { return 0; }
bool Qcow2Image::is_corrupt() const { return false; }

}  // namespace qcowkit
