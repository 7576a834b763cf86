// The table of formats besides qcow2 and raw. Each entry adapts one
// format's own API (vhd.hpp, ...) to the common shape; option names and
// values are qemu-img's.
#include <cstring>

#include "formats/format_entries.hpp"
#include "qcowkit/formats.hpp"

namespace qcowkit {
namespace {

const ImageFormat* const kFormats[] = {&formats::vpc_format(), &formats::vdi_format(),
                                       &formats::vmdk_format(), &formats::qcow_format(),
                                       &formats::vhdx_format()};

}  // namespace

const ImageFormat* find_image_format(std::string_view name) {
  for (const ImageFormat* f : kFormats)
    if (name == f->name) return f;
  return nullptr;
}

const ImageFormat* sniff_image_format(BlockDevice& file) {
  for (const ImageFormat* f : kFormats)
    if (f->sniff && f->sniff(file)) return f;
  return nullptr;
}

std::vector<std::string> image_format_names() {
  std::vector<std::string> names;
  for (const ImageFormat* f : kFormats) names.push_back(f->name);
  return names;
}

}  // namespace qcowkit
