// The plugin's configuration: what `nbdkit qcow2 KEY=VALUE ...` may say.
// Parsing and validation only; nothing here opens a file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qcowkit/qcow2.hpp"
#include "qcowkit/result.hpp"
#include "serve/serve_options.hpp"

namespace qcowkit::plugin {

using serve::ServeOptions;
using serve::TrimMode;
using serve::ValueParsers;

struct PluginOptions {
  std::string file;                      // absolute path to the image
  std::optional<uint64_t> create_size;   // create the image when it is missing
  Qcow2CreateOptions create;             // cluster-size= and compat=, for create= (size set there)
  ServeOptions serve;                    // metadata-cache=, trim=, snapshot= (shared with the filter)
  bool allow_backing = false;            // open the backing file (same directory only)
  bool locking = true;                   // take QEMU-compatible image locks
};

// Applies one KEY=VALUE to `options` (parsers: see serve_options.hpp).
// Unknown keys fail with EINVAL.
Status apply_option(PluginOptions& options, const std::string& key, const std::string& value,
                    const ValueParsers& parsers);

// Checks the options as a whole, once all are given.
Status validate_options(const PluginOptions& options);

// The `nbdkit qcow2 --help` text for the keys above.
const char* plugin_config_help();

}  // namespace qcowkit::plugin
