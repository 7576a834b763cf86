// The options every qcow2 NBD server of qcowkit takes, whatever supplies
// the image's bytes: the plugin spells them `trim=`, the filter
// `qcow2-trim=`. Parsing and validation only; nothing here opens anything.
//
// Thread safety: plain values; parse at configuration time, read after.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "qcowkit/qcow2.hpp"
#include "qcowkit/result.hpp"

namespace qcowkit::serve {

// What an NBD trim request does to the image.
enum class TrimMode {
  deallocate,  // free the clusters (they read as zeroes, or from the backing file)
  zero,        // only make the range read as zeroes; never returns space
  off,         // do not advertise trim at all
};

const char* to_string(TrimMode mode);

struct ServeOptions {
  uint64_t metadata_cache = 32u << 20;  // bytes of cached L2 and refcount blocks
  TrimMode trim = TrimMode::deallocate;
  std::string snapshot;                 // serve this internal snapshot, read-only

  // The engine's open options these stand for (no backing, no data file).
  Qcow2OpenOptions open_options(bool writable) const;
};

// nbdkit's parsers in the adapters (so "1G" and "on" mean what they mean to
// every other nbdkit plugin); plain ones in unit tests.
struct ValueParsers {
  Result<uint64_t> (*parse_size)(const std::string& value);
  Result<bool> (*parse_bool)(const std::string& value);
};

// Applies `name`=`value` when `name` (the key without the adapter's prefix)
// is one of the serving options; returns false, untouched, when it is not.
// `shown_key` is the key as the user typed it, for messages.
Result<bool> apply_serve_option(ServeOptions& options, std::string_view name,
                                const std::string& shown_key, const std::string& value,
                                const ValueParsers& parsers);

// The --help lines for the serving options, each key spelled with `prefix`.
std::string serve_options_help(const std::string& prefix);

}  // namespace qcowkit::serve
