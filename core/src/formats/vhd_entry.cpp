// VHD in the format table, under qemu-img's name "vpc". Options as qemu-img:
// subformat=dynamic|fixed, force_size=on|off.
#include "formats/format_entries.hpp"
#include "qcowkit/vhd.hpp"

namespace qcowkit::formats {
namespace {

Result<VhdCreateOptions> parse_options(uint64_t size, const FormatOptions& options) {
  QK_TRY(check_known_keys(options, {"subformat", "force_size"}, "vpc"));
  VhdCreateOptions o;
  o.size = size;
  if (auto it = options.find("subformat"); it != options.end()) {
    if (it->second == "fixed")
      o.fixed = true;
    else if (it->second != "dynamic")
      return make_error(EINVAL, "invalid value '" + it->second +
                                    "' for -o subformat (expected dynamic or fixed)");
  }
  QK_ASSIGN_OR_RETURN(o.force_size, option_bool(options, "force_size", false));
  return o;
}

Result<ImageFormatFacts> probe(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(VhdDetails d, probe_vhd(file));
  ImageFormatFacts facts;
  facts.virtual_size = d.virtual_size;
  if (!d.fixed) facts.cluster_size = d.block_size;  // qemu-img shows the block size as clusters
  facts.backing_file = d.parent;
  return facts;
}

std::string describe(uint64_t size, const FormatOptions& options) {
  auto o = parse_options(size, options);
  const bool fixed = o.ok() && o->fixed;
  return "fmt=vpc size=" + std::to_string(size) + " subformat=" + (fixed ? "fixed" : "dynamic") +
         " force_size=" + (o.ok() && o->force_size ? "on" : "off");
}

}  // namespace

const ImageFormat& vpc_format() {
  static const ImageFormat format{"vpc",    looks_like_vhd, probe,   open_vhd,
                                  check_by_parsing<parse_options>,
                                  create_by_parsing<parse_options, create_vhd>, describe, nullptr,
                                  open_vhd_with_files};
  return format;
}

}  // namespace qcowkit::formats
