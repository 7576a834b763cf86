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
  // The parent image's name as the image records it (a differencing VHD),
  // not yet resolved or checked; empty: none. qemu-img's "backing-filename".
  std::string backing_file;
};

// The files an image names besides itself, as the image opener hands them
// to a format (ImageFormat::open_with_files, ::check). A format never calls
// the OS or the Host for a name it read from a file: the opener resolves
// every name under the policy its caller chose (image_opener.hpp:
// refuse / same_directory / allow, the backing-file rules), takes the
// locks, and closes the files with the image.
//
// Thread safety: used only during the open or check call that received it.
class ImageFiles {
 public:
  virtual ~ImageFiles() = default;
  // Opens `name`, written inside the image (a vmdk extent: relative to the
  // image's folder), read-only. EPERM / ENOTSUP when the policy refuses it,
  // ELOOP when it is the image itself.
  virtual Result<std::shared_ptr<BlockDevice>> open_file(const std::string& name) = 0;
  // The image's backing (parent) image, opened by the opener from
  // ImageFormatFacts::backing_file; nullptr when the caller's policy left
  // it closed (its contents then read as zeroes).
  virtual std::shared_ptr<BlockDevice> backing() = 0;
};

// What a format's check found, in qemu-img check's terms.
struct FormatCheckReport {
  uint64_t corruptions = 0;
  uint64_t check_errors = 0;
  std::optional<uint64_t> image_end_offset;  // reported when the format gives one
  std::optional<uint64_t> total_clusters, allocated_clusters;  // likewise
  std::vector<std::string> messages;  // one per problem ("ERROR: ..."), as qemu-img prints
  // Non-zero: the check stopped here, as qemu-img's does for this problem
  // (it then says "Check failed: <strerror>" and exits 1, reporting nothing).
  int failed_errno = 0;
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
  // For images that span several files (a vmdk descriptor and its extents)
  // or sit on a parent (a differencing VHD): used instead of `open` when
  // set, with the other files reached only through `files`. Such images
  // may be opened read-only only (EROFS otherwise) unless the format says.
  Result<std::unique_ptr<BlockDevice>> (*open_with_files)(std::shared_ptr<BlockDevice> file,
                                                          bool read_only,
                                                          ImageFiles& files) = nullptr;
  // qemu-img check for this format: reads the structures without trusting
  // them (an image too broken to open is still reported on). nullptr: the
  // format has no check, as in qemu-img ("does not support checks").
  Result<FormatCheckReport> (*check)(BlockDevice& file, ImageFiles& files) = nullptr;
  // `probe` for images whose facts lie partly in the files they name (a
  // vmdk descriptor's grain size is in its sparse extents); a file the
  // policy refuses only leaves those facts out. nullptr: `probe`.
  Result<ImageFormatFacts> (*probe_with_files)(BlockDevice& file, ImageFiles& files) = nullptr;
};

// The format named `name`, or nullptr.
const ImageFormat* find_image_format(std::string_view name);

// The first format whose content `file` has, or nullptr (qcow2 and raw are
// the image opener's to decide).
const ImageFormat* sniff_image_format(BlockDevice& file);

// Every name find_image_format knows, for messages.
std::vector<std::string> image_format_names();

}  // namespace qcowkit
