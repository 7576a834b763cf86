// One registry entry per format, each defined beside its format's code
// (vhd_entry.cpp, ...), and the option helpers they share.
#pragma once

#include <memory>
#include <string>

#include "qcowkit/formats.hpp"

namespace qcowkit::formats {

const ImageFormat& vpc_format();
const ImageFormat& vdi_format();
const ImageFormat& vmdk_format();
const ImageFormat& qcow_format();
const ImageFormat& vhdx_format();

// EINVAL naming the key when `options` has a key not in `known`.
Status check_known_keys(const FormatOptions& options, std::initializer_list<const char*> known,
                        const char* format);
// "on"/"off" (and qemu's other spellings) of `key`, or `fallback` when unset.
Result<bool> option_bool(const FormatOptions& options, const char* key, bool fallback);

// An ImageFormat::check that accepts the options exactly when the format's
// own parser, `parse(size, options)`, does.
template <auto parse>
Status check_by_parsing(const FormatOptions& options) {
  auto parsed = parse(0, options);
  if (!parsed.ok()) return std::move(parsed).error();
  return {};
}

// An ImageFormat::create that parses the options with the format's own
// parser and hands them to its creator, `make(file, parsed)`.
template <auto parse, auto make>
Result<std::unique_ptr<BlockDevice>> create_by_parsing(std::shared_ptr<BlockDevice> file, uint64_t size,
                                                       const FormatOptions& options, const std::string&) {
  QK_ASSIGN_OR_RETURN(auto parsed, parse(size, options));
  return make(std::move(file), parsed);
}

}  // namespace qcowkit::formats
