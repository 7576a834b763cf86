// qcow2's creation options: parsing qemu-img's -o keys, the rules a new
// image obeys, and the "Formatting" description.
#include "qcowkit/qcow2_options.hpp"

#include "qcow2/bitmaps.hpp"
#include "qcow2/format.hpp"
#include "qcowkit/option_values.hpp"

namespace qcowkit {
namespace {

Error bad_value(const std::string& key, const std::string& value, const char* expected) {
  return make_error(EINVAL, "invalid value '" + value + "' for -o " + key + " (expected " +
                                expected + ")");
}

const char* preallocation_name(Preallocation p) {
  switch (p) {
    case Preallocation::off: return "off";
    case Preallocation::metadata: return "metadata";
    case Preallocation::falloc: return "falloc";
    case Preallocation::full: return "full";
  }
  return "off";
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

bool is_valid_qcow2_cluster_size(uint64_t bytes) {
  return bytes >= kQcow2MinClusterSize && bytes <= kQcow2MaxClusterSize && is_power_of_two(bytes);
}

std::vector<std::string> qcow2_bitmap_flag_names(uint32_t flags) {
  std::vector<std::string> names;
  if (flags & qcow2::kBitmapInUse) names.push_back("in-use");
  if (flags & qcow2::kBitmapAuto) names.push_back("auto");
  return names;
}

const char* qcow2_compat_name(int version) { return version >= 3 ? "1.1" : "0.10"; }

Status validate_qcow2_create_options(const Qcow2CreateOptions& o, bool check_size) {
  auto bad = [](const std::string& what) { return make_error(EINVAL, what); };
  if (o.version != 2 && o.version != 3)
    return bad("version must be 2 (compat=0.10) or 3 (compat=1.1)");
  if (check_size && o.size % qcow2::kSectorSize != 0)
    return bad("the size must be a multiple of 512 bytes");
  if (check_size && o.size > static_cast<uint64_t>(INT64_MAX)) return bad("the size is too large");
  if (!is_valid_qcow2_cluster_size(o.cluster_size))
    return bad("the cluster size must be a power of two from 512 bytes to 2 MiB");
  if (o.refcount_bits > 64 || !is_power_of_two(o.refcount_bits))
    return bad("refcount bits must be 1, 2, 4, 8, 16, 32 or 64");
  if (o.version == 2 && o.refcount_bits != 16)
    return bad("version 2 images (compat=0.10) have 16-bit refcounts only");
  if (o.version == 2 && o.lazy_refcounts)
    return bad("lazy refcounts need version 3 (compat=1.1)");
  if (o.version == 2 && o.compression_type != CompressionType::deflate)
    return bad("zstd compression needs version 3 (compat=1.1)");
  if (o.extended_l2 && o.version < 3)
    return bad("extended L2 entries need version 3 (compat=1.1)");
  if (o.extended_l2 && o.cluster_size < 16384)
    return bad("extended L2 entries need clusters of at least 16 KiB");
  if (o.backing_file.size() > qcow2::kMaxBackingNameBytes)
    return bad("the backing file name is too long");
  return {};
}

Status apply_qcow2_create_options(const std::map<std::string, std::string>& options,
                                  Qcow2CreateOptions& out) {
  for (const auto& [key, value] : options) {
    if (key == "compat") {
      if (value == "0.10" || value == "v2")
        out.version = 2;
      else if (value == "1.1" || value == "v3")
        out.version = 3;
      else
        return bad_value(key, value, "0.10 or 1.1");
    } else if (key == "cluster_size") {
      auto size = parse_size(value);
      if (!size.ok()) return with_context(size.error(), "-o cluster_size");
      if (!is_valid_qcow2_cluster_size(*size))
        return bad_value(key, value, "a power of two from 512 to 2M");
      out.cluster_size = static_cast<uint32_t>(*size);
    } else if (key == "refcount_bits") {
      if (value != "1" && value != "2" && value != "4" && value != "8" && value != "16" &&
          value != "32" && value != "64")
        return bad_value(key, value, "1, 2, 4, 8, 16, 32 or 64");
      out.refcount_bits = static_cast<unsigned>(std::stoul(value));
    } else if (key == "lazy_refcounts") {
      QK_ASSIGN_OR_RETURN(out.lazy_refcounts, parse_on_off(key, value));
    } else if (key == "extended_l2") {
      QK_ASSIGN_OR_RETURN(out.extended_l2, parse_on_off(key, value));
    } else if (key == "preallocation") {
      if (value == "off")
        out.preallocation = Preallocation::off;
      else if (value == "metadata")
        out.preallocation = Preallocation::metadata;
      else if (value == "falloc")
        out.preallocation = Preallocation::falloc;
      else if (value == "full")
        out.preallocation = Preallocation::full;
      else
        return bad_value(key, value, "off, metadata, falloc or full");
    } else if (key == "compression_type") {
      if (value == "zlib")
        out.compression_type = CompressionType::deflate;
      else if (value == "zstd")
        out.compression_type = CompressionType::zstd;
      else
        return bad_value(key, value, "zlib or zstd");
    } else if (key == "backing_file") {
      out.backing_file = value;
    } else if (key == "backing_fmt") {
      if (value != "raw" && value != "qcow2") return bad_value(key, value, "raw or qcow2");
      out.backing_format = value;
    } else {
      return make_error(EINVAL, "unknown option '-o " + key + "'");
    }
  }
  return validate_qcow2_create_options(out, /*check_size=*/false);
}

std::string describe_qcow2_create_options(const Qcow2CreateOptions& o) {
  std::string text = "fmt=qcow2 cluster_size=" + std::to_string(o.cluster_size);
  if (o.preallocation != Preallocation::off)
    text += std::string(" preallocation=") + preallocation_name(o.preallocation);
  if (o.version >= 3) text += std::string(" extended_l2=") + (o.extended_l2 ? "on" : "off");
  text += std::string(" compression_type=") + to_string(o.compression_type);
  text += " size=" + std::to_string(o.size);
  if (!o.backing_file.empty()) text += " backing_file=" + o.backing_file;
  if (!o.backing_format.empty()) text += " backing_fmt=" + o.backing_format;
  if (o.version < 3) text += " compat=0.10";
  if (o.version >= 3) text += std::string(" lazy_refcounts=") + (o.lazy_refcounts ? "on" : "off");
  text += " refcount_bits=" + std::to_string(o.refcount_bits);
  return text;
}

}  // namespace qcowkit
