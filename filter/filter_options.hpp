// The blockcache filter's command-line options (blockcache-*=...), parsed
// into the core's BlockCacheOptions.
#pragma once

#include <string>

#include "qcowkit/block_cache.hpp"

namespace qcowkit::filter {

struct FilterOptions {
  FilterOptions() {
    // nbdkit plugins that allow parallel requests usually gain from many
    // writes in flight (a slow plugin is often slow per request, not per byte).
    cache.writeback_parallelism = 64;
  }
  BlockCacheOptions cache;
};

// The text nbdkit prints for --help.
extern const char* const kConfigHelp;

// True when `key` is one of ours.
bool is_filter_option(const std::string& key);

// Applies key=value; the error names the option and what was wrong.
Status apply_option(FilterOptions& options, const std::string& key, const std::string& value);

// Checks the options together, once all are known.
Status check_options(const FilterOptions& options);

}  // namespace qcowkit::filter
