// VMDK in the format table. Options as qemu-img:
// subformat=monolithicSparse|streamOptimized.
#include "formats/format_entries.hpp"
#include "qcowkit/vmdk.hpp"

namespace qcowkit::formats {
namespace {

Result<VmdkCreateOptions> parse_options(uint64_t size, const FormatOptions& options) {
  QK_TRY(check_known_keys(options, {"subformat"}, "vmdk"));
  VmdkCreateOptions o;
  o.size = size;
  if (auto it = options.find("subformat"); it != options.end()) {
    if (it->second == "streamOptimized")
      o.stream_optimized = true;
    else if (it->second != "monolithicSparse")
      return make_error(EINVAL, "invalid value '" + it->second +
                                    "' for -o subformat (monolithicSparse and streamOptimized "
                                    "are supported)");
  }
  return o;
}

Result<ImageFormatFacts> probe(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(VmdkDetails d, probe_vmdk(file));
  ImageFormatFacts facts;
  facts.virtual_size = d.virtual_size;
  if (d.grain_size) facts.cluster_size = d.grain_size;
  facts.specific_type = "vmdk";
  facts.specific = {{"cid", uint64_t{d.cid}},
                    {"parent-cid", uint64_t{d.parent_cid}},
                    {"create-type", d.create_type}};
  return facts;
}

// A descriptor's grain size is its first sparse extent's, as qemu-img
// reports it; unreadable or refused, it is left out.
Result<ImageFormatFacts> probe_with_files(BlockDevice& file, ImageFiles& files) {
  QK_ASSIGN_OR_RETURN(ImageFormatFacts facts, probe(file));
  if (facts.cluster_size) return facts;
  if (auto grain = vmdk_descriptor_grain_size(file, files); grain.ok() && *grain)
    facts.cluster_size = *grain;
  return facts;
}

Result<std::unique_ptr<BlockDevice>> create(std::shared_ptr<BlockDevice> file, uint64_t size,
                                            const FormatOptions& options,
                                            const std::string& file_name) {
  QK_ASSIGN_OR_RETURN(VmdkCreateOptions o, parse_options(size, options));
  if (!file_name.empty()) o.file_name = file_name;
  return create_vmdk(std::move(file), o);
}

std::string describe(uint64_t size, const FormatOptions& options) {
  auto o = parse_options(size, options);
  return "fmt=vmdk size=" + std::to_string(size) + " subformat=" +
         (o.ok() && o->stream_optimized ? "streamOptimized" : "monolithicSparse");
}

bool in_order(const FormatOptions& options) {
  auto o = parse_options(0, options);
  return o.ok() && o->stream_optimized;
}

}  // namespace

const ImageFormat& vmdk_format() {
  static const ImageFormat format{"vmdk",   looks_like_vmdk, probe,    open_vmdk,
                                  check_by_parsing<parse_options>, create, describe, in_order,
                                  open_vmdk_with_files, check_vmdk, probe_with_files};
  return format;
}

}  // namespace qcowkit::formats
