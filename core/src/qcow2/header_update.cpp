// Rewriting the header of an existing image (bitmap directory switches,
// rebase): the fixed fields stay as they are on disk, the extensions and
// the backing file name are laid out anew. The caller writes the result in
// one write, as QEMU rewrites its header, so that a power cut leaves the old
// or the new header and never a mix of the two.
#include <algorithm>
#include <cstring>

#include "qcow2/format.hpp"
#include "qcow2/header.hpp"
#include "util/endian.hpp"

namespace qcowkit::qcow2 {

Result<std::vector<uint8_t>> encode_header_area(ConstByteSpan fixed, const Header& next) {
  const uint64_t cs = next.cluster_size();
  if (fixed.size() < next.header_length)
    return make_error(EINVAL, "the header's fixed part is shorter than header_length");
  std::vector<uint8_t> out(fixed.begin(), fixed.begin() + next.header_length);
  if (next.version >= 3) store_be64(out.data() + kOffAutoclear, next.autoclear_features);
  auto put = [&out](uint32_t type, const uint8_t* data, size_t length) {
    const size_t at = out.size();
    out.resize(at + 8 + ((length + 7) & ~size_t{7}), 0);
    store_be32(out.data() + at, type);
    store_be32(out.data() + at + 4, static_cast<uint32_t>(length));
    if (length) std::memcpy(out.data() + at + 8, data, length);
  };
  auto bytes_of = [](const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); };
  if (!next.backing_format.empty() && !next.backing_file.empty())
    put(kExtBackingFormat, bytes_of(next.backing_format), next.backing_format.size());
  if (!next.data_file.empty()) put(kExtDataFile, bytes_of(next.data_file), next.data_file.size());
  for (const HeaderExtension& e : next.extensions)
    if (e.type != kExtBackingFormat && e.type != kExtDataFile && e.type != kExtBitmaps)
      put(e.type, e.data.data(), e.data.size());
  if (next.bitmaps) {
    uint8_t b[24] = {};
    store_be32(b, next.bitmaps->nb_bitmaps);
    store_be64(b + 8, next.bitmaps->directory_size);
    store_be64(b + 16, next.bitmaps->directory_offset);
    put(kExtBitmaps, b, sizeof b);
  }
  out.resize(out.size() + 8, 0);  // end of extensions
  if (next.backing_file.size() > kMaxBackingNameBytes)
    return make_error(EINVAL, "a backing file name is at most 1023 bytes long");
  store_be64(out.data() + 8, next.backing_file.empty() ? 0 : out.size());
  store_be32(out.data() + 16, static_cast<uint32_t>(next.backing_file.size()));
  out.insert(out.end(), next.backing_file.begin(), next.backing_file.end());
  if (out.size() > cs)
    return make_error(ENOSPC, "the header, its extensions and the backing file name would not "
                              "fit in the first cluster (" + std::to_string(cs) + " bytes)");
  return out;
}

}  // namespace qcowkit::qcow2

#include "qcow2/image_impl.hpp"

namespace qcowkit {

using namespace qcow2;

// Everything `next` relies on must already be durable: this is the switch.
// One write covers the new header area and whatever the old one used
// beyond it (zeroed), then a barrier; only then does memory follow.
Status Qcow2Image::Impl::switch_header_locked(const Header& next) {
  std::vector<uint8_t> fixed(header_.header_length);
  QK_TRY(file_->read(0, fixed));
  QK_ASSIGN_OR_RETURN(std::vector<uint8_t> old_area, encode_header_area(fixed, header_));
  QK_ASSIGN_OR_RETURN(std::vector<uint8_t> area, encode_header_area(fixed, next));
  // Check what we are about to write as open() would read it.
  std::vector<uint8_t> parsed_from(std::max<size_t>(area.size(), kV3MinHeaderLength), 0);
  std::copy(area.begin(), area.end(), parsed_from.begin());
  QK_ASSIGN_OR_RETURN(Header adopted, parse_header(parsed_from, file_->info().size));
  if (old_area.size() > area.size()) area.resize(old_area.size(), 0);
  QK_TRY(write_header_field_locked(0, area));
  QK_TRY(barrier_locked());
  header_ = std::move(adopted);
  return {};
}

}  // namespace qcowkit

namespace qcowkit {

using namespace qcow2;

Status Qcow2Image::Impl::set_backing_file(const std::string& name, const std::string& format,
                                          std::shared_ptr<BlockDevice> backing) {
  QK_TRY(check_open("rebase", true));
  if (name.size() > kMaxBackingNameBytes)
    return make_error(EINVAL, "a backing file name is at most 1023 bytes long");
  WriterLock gate(io_gate_);
  MutexLock lock(mutex_);
  // What the image holds now (data copied in by a rebase) is durable before
  // the header names another backing file.
  QK_TRY(flush_locked());
  Header next = header_;
  next.backing_file = name;
  next.backing_format = name.empty() ? std::string() : format;
  QK_TRY(switch_header_locked(next));
  backing_ = std::move(backing);
  return apply_releasable_locked();
}

}  // namespace qcowkit
