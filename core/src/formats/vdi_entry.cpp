// VDI in the format table. Options as qemu-img: static=on|off.
#include "formats/format_entries.hpp"
#include "qcowkit/vdi.hpp"

namespace qcowkit::formats {
namespace {

Result<VdiCreateOptions> parse_options(uint64_t size, const FormatOptions& options) {
  QK_TRY(check_known_keys(options, {"static"}, "vdi"));
  VdiCreateOptions o;
  o.size = size;
  QK_ASSIGN_OR_RETURN(o.static_image, option_bool(options, "static", false));
  return o;
}

Result<ImageFormatFacts> probe(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(VdiDetails d, probe_vdi(file));
  ImageFormatFacts facts;
  facts.virtual_size = d.virtual_size;
  facts.cluster_size = d.block_size;
  return facts;
}

std::string describe(uint64_t size, const FormatOptions& options) {
  auto o = parse_options(size, options);
  return "fmt=vdi size=" + std::to_string(size) +
         " static=" + (o.ok() && o->static_image ? "on" : "off");
}

}  // namespace

const ImageFormat& vdi_format() {
  static const ImageFormat format{"vdi",    looks_like_vdi, probe,   open_vdi,
                                  check_by_parsing<parse_options>,
                                  create_by_parsing<parse_options, create_vdi>, describe, nullptr,
                                  nullptr, check_vdi};
  return format;
}

}  // namespace qcowkit::formats
