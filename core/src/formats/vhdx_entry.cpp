// VHDX in the format table. Options as qemu-img: subformat=dynamic|fixed,
// block_size, log_size, block_state_zero=on|off.
#include "formats/format_entries.hpp"
#include "qcowkit/option_values.hpp"
#include "qcowkit/vhdx.hpp"

namespace qcowkit::formats {
namespace {

Result<uint64_t> size_option(const FormatOptions& options, const char* key, uint64_t fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  auto v = parse_size(it->second);
  if (!v.ok())
    return make_error(EINVAL, "invalid value '" + it->second + "' for -o " + key + ": " +
                                  v.error().message);
  return *v;
}

Result<VhdxCreateOptions> parse_options(uint64_t size, const FormatOptions& options) {
  QK_TRY(check_known_keys(options, {"subformat", "block_size", "log_size", "block_state_zero"},
                          "vhdx"));
  VhdxCreateOptions o;
  o.size = size;
  if (auto it = options.find("subformat"); it != options.end()) {
    if (it->second == "fixed")
      o.fixed = true;
    else if (it->second != "dynamic")
      return make_error(EINVAL, "invalid value '" + it->second +
                                    "' for -o subformat (expected dynamic or fixed)");
  }
  QK_ASSIGN_OR_RETURN(uint64_t block_size, size_option(options, "block_size", 0));
  // qemu-img rounds up to whole MiB and caps at 256 MiB; 0 picks by size.
  block_size = (block_size + (1u << 20) - 1) / (1u << 20) * (1u << 20);
  if (block_size > (256u << 20)) block_size = 256u << 20;
  if (block_size & (block_size - 1))
    return make_error(EINVAL, "-o block_size=" + std::to_string(block_size) +
                                  " is not a power of two (1M, 2M, 4M, ... 256M)");
  o.block_size = uint32_t(block_size);
  QK_ASSIGN_OR_RETURN(uint64_t log_size, size_option(options, "log_size", 1u << 20));
  if (log_size > (256u << 20))
    return make_error(EINVAL, "-o log_size=" + std::to_string(log_size) + " is over 256 MiB");
  o.log_size = uint32_t(log_size);
  QK_ASSIGN_OR_RETURN(o.block_state_zero, option_bool(options, "block_state_zero", true));
  return o;
}

Result<ImageFormatFacts> probe(BlockDevice& file) {
  QK_ASSIGN_OR_RETURN(VhdxDetails d, probe_vhdx(file));
  ImageFormatFacts facts;
  facts.virtual_size = d.virtual_size;
  facts.cluster_size = d.block_size;  // qemu-img shows the block size as clusters
  return facts;
}

std::string describe(uint64_t size, const FormatOptions& options) {
  // qemu-img's line: the options with defaults, then those given.
  auto value = [&](const char* key, const char* fallback) {
    auto it = options.find(key);
    return it == options.end() ? std::string(fallback) : it->second;
  };
  // Sizes as given (qemu-img prints them before rounding).
  auto sized = [&](const char* key, uint64_t fallback) {
    auto v = size_option(options, key, fallback);
    return std::to_string(v.ok() ? *v : fallback);
  };
  auto o = parse_options(size, options);
  std::string line = "fmt=vhdx size=" + std::to_string(size) + " log_size=" +
                     sized("log_size", 1u << 20) + " block_size=" + sized("block_size", 0);
  if (options.count("subformat")) line += " subformat=" + value("subformat", "");
  if (options.count("block_state_zero"))
    line += std::string(" block_state_zero=") + (o.ok() && !o->block_state_zero ? "off" : "on");
  return line;
}

}  // namespace

const ImageFormat& vhdx_format() {
  static const ImageFormat format{"vhdx", looks_like_vhdx, probe, open_vhdx,
                                  check_by_parsing<parse_options>,
                                  create_by_parsing<parse_options, create_vhdx>, describe};
  return format;
}

}  // namespace qcowkit::formats
