// The qcow2 filter's options: qcow2-KEY=VALUE. The serving options are the
// plugin's (serve_options.hpp) with the prefix; create and backing are the
// filter's own, since the bytes come from a plugin instead of a file name.
// Parsing and validation only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qcowkit/result.hpp"
#include "serve/serve_options.hpp"

namespace qcowkit::filter {

struct Qcow2FilterOptions {
  serve::ServeOptions serve;            // qcow2-metadata-cache=, qcow2-trim=, qcow2-snapshot=
  std::optional<uint64_t> create_size;  // qcow2-create=: make an image on an empty plugin
  std::string backing;                  // qcow2-backing=: the backing file, opened by name
};

extern const char* const kQcow2Prefix;  // "qcow2-"

// True when `key` is one of ours (starts with the prefix).
bool is_qcow2_option(const std::string& key);

// Applies one qcow2-KEY=VALUE; unknown qcow2- keys fail with EINVAL.
Status apply_qcow2_option(Qcow2FilterOptions& options, const std::string& key,
                          const std::string& value, const serve::ValueParsers& parsers);

// Checks the options together, once all are given.
Status check_qcow2_options(const Qcow2FilterOptions& options);

// The text nbdkit prints for --help.
const char* qcow2_filter_help();

}  // namespace qcowkit::filter
