#include "create_options.hpp"

#include "args.hpp"
#include "size_parse.hpp"

namespace qcowkit::cli {
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

}  // namespace

Status apply_qcow2_options(const std::map<std::string, std::string>& options,
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
      if (*size < 512 || *size > (2u << 20) || (*size & (*size - 1)))
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
  if (out.version == 2 && (out.lazy_refcounts || out.extended_l2 || out.refcount_bits != 16 ||
                           out.compression_type != CompressionType::deflate))
    return make_error(EINVAL, "compat=0.10 supports neither lazy_refcounts, extended_l2, "
                              "compression_type=zstd nor refcount_bits other than 16");
  if (out.extended_l2 && out.cluster_size < 16384)
    return make_error(EINVAL, "extended_l2 needs cluster_size of at least 16K");
  return {};
}

std::string describe_qcow2_options(const Qcow2CreateOptions& o) {
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

}  // namespace qcowkit::cli
