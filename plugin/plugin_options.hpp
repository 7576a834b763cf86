// The plugin's configuration: what `nbdkit qcow2 KEY=VALUE ...` may say.
// Parsing and validation only; nothing here opens a file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qcowkit/result.hpp"

namespace qcowkit::plugin {

// What an NBD trim request does to the image.
enum class TrimMode {
  deallocate,  // free the clusters (they read as zeroes, or from the backing file)
  zero,        // only make the range read as zeroes; never returns space
  off,         // do not advertise trim at all
};

struct PluginOptions {
  std::string file;                      // absolute path to the image
  std::optional<uint64_t> create_size;   // create the image when it is missing
  uint32_t cluster_size = 65536;         // for create
  int version = 3;                       // for create: 2 (compat=0.10) or 3 (compat=1.1)
  uint64_t metadata_cache = 32u << 20;   // bytes of cached L2 and refcount blocks
  TrimMode trim = TrimMode::deallocate;
  bool allow_backing = false;            // open the backing file (same directory only)
  bool locking = true;                   // take QEMU-compatible image locks
  std::string snapshot;                  // serve this internal snapshot, read-only
};

// Applies one KEY=VALUE to `options`. `parse_size` and `parse_bool` are
// nbdkit's parsers in the plugin (so "1G" and "on" mean what they mean to
// every other nbdkit plugin). Unknown keys fail with EINVAL.
struct ValueParsers {
  Result<uint64_t> (*parse_size)(const std::string& value);
  Result<bool> (*parse_bool)(const std::string& value);
};
Status apply_option(PluginOptions& options, const std::string& key, const std::string& value,
                    const ValueParsers& parsers);

// Checks the options as a whole, once all are given.
Status validate_options(const PluginOptions& options);

// The `nbdkit qcow2 --help` text for the keys above.
extern const char* const plugin_config_help;

const char* to_string(TrimMode mode);

}  // namespace qcowkit::plugin
