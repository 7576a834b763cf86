// qcow (version 1) in the format table: read-only, so no creation options.
#include "formats/format_entries.hpp"
#include "qcowkit/qcow1.hpp"

namespace qcowkit::formats {
namespace {

Result<ImageFormatFacts> probe(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(Qcow1Details d, probe_qcow1(file));
  ImageFormatFacts facts;
  facts.virtual_size = d.virtual_size;
  facts.cluster_size = d.cluster_size;
  return facts;
}

Status check(const FormatOptions&) {
  return make_error(ENOTSUP, "qcow (version 1) images are read-only here; write qcow2");
}

Result<std::unique_ptr<BlockDevice>> create(std::shared_ptr<BlockDevice>, uint64_t,
                                            const FormatOptions& options, const std::string&) {
  QK_TRY(check(options));
  return make_error(ENOTSUP, "unreachable");
}

std::string describe(uint64_t size, const FormatOptions&) {
  return "fmt=qcow size=" + std::to_string(size);
}

}  // namespace

const ImageFormat& qcow_format() {
  static const ImageFormat format{"qcow", looks_like_qcow1, probe, open_qcow1, check, create, describe};
  return format;
}

}  // namespace qcowkit::formats
