// The image formats besides qcow2 and raw (vpc, vdi, ...), each known by
// qemu-img's name: how it is recognised by content, opened, created and
// described. The image opener, `qcowkit info`, `create` and `convert` go
// through this table, so adding a format touches no adapter.
//
// Every function here is safe to call from several threads; the devices they
// return are thread-safe, share the file they were given and leave closing
// it to its owner.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

// `-o key=value` creation options, as qemu-img spells them.
using FormatOptions = std::map<std::string, std::string>;

// What `qemu-img info` reports about an image of this format.
struct ImageFormatFacts {
  uint64_t virtual_size = 0;
  std::optional<uint64_t> cluster_size;  // "cluster_size" / "cluster-size"
  // "Format specific information" (type, then fields in qemu-img's order and
  // JSON spelling: "parent-cid"), when qemu-img has some.
  std::string specific_type;
  std::vector<std::pair<std::string, std::variant<std::string, uint64_t>>> specific;
};

struct ImageFormat {
  const char* name;  // qemu-img's: "vpc", "vdi", ...
  // Recognises the format by the file's content; never by its name.
  bool (*sniff)(BlockDevice& file);
  Result<ImageFormatFacts> (*probe)(BlockDevice& file);
  Result<std::unique_ptr<BlockDevice>> (*open)(std::shared_ptr<BlockDevice> file, bool read_only);
  // Checks creation options before any file is made (EINVAL naming the key).
  Status (*check_options)(const FormatOptions& options);
  // Formats an empty writable `file` as a new image of at least `size` bytes
  // and returns it open for writing. `file_name` is the file's base name,
  // for formats that record it (vmdk's descriptor); empty: a default.
  Result<std::unique_ptr<BlockDevice>> (*create)(std::shared_ptr<BlockDevice> file, uint64_t size,
                                                 const FormatOptions& options,
                                                 const std::string& file_name);
  // "fmt=vpc size=... subformat=dynamic", qemu-img's "Formatting" line.
  std::string (*describe)(uint64_t size, const FormatOptions& options);
  // True when a new image made with `options` takes writes only in guest
  // order (vmdk streamOptimized): copies into it must commit in order.
  // nullptr: any order.
  bool (*writes_in_order)(const FormatOptions& options) = nullptr;
};

// The format named `name`, or nullptr.
const ImageFormat* find_image_format(std::string_view name);

// The first format whose content `file` has, or nullptr (qcow2 and raw are
// the image opener's to decide).
const ImageFormat* sniff_image_format(BlockDevice& file);

// Every name find_image_format knows, for messages.
std::vector<std::string> image_format_names();

}  // namespace qcowkit
