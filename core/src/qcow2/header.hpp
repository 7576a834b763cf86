// The qcow2 header and its extensions: parsing with full validation, and
// serialization for new images. Validation happens before anything in the
// header is trusted (see shared/docs/qcow2-notes.md, "Limits").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::qcow2 {

struct HeaderExtension {
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct BitmapsExtension {
  uint32_t nb_bitmaps = 0;
  uint64_t directory_size = 0;
  uint64_t directory_offset = 0;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 0;
  uint8_t compression_type = 0;

  std::string backing_file;
  std::string backing_format;
  std::string data_file;
  std::optional<BitmapsExtension> bitmaps;  // only when the extension is present
  std::vector<HeaderExtension> extensions;  // every extension, unknown ones too

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  bool extended_l2() const;
  uint32_t l2_entry_bytes() const { return extended_l2() ? 16 : 8; }
  uint64_t l2_entries() const { return cluster_size() / l2_entry_bytes(); }
  unsigned refcount_bits() const { return 1u << refcount_order; }
  uint64_t refcount_block_entries() const { return cluster_size() * 8 / refcount_bits(); }
  // L1 entries needed to map `virtual_size` bytes.
  uint64_t l1_entries_for(uint64_t virtual_size) const;
};

// The refcount table and blocks a new image lays out: enough to count
// `other_clusters` clusters and themselves, at least one cluster of each.
struct RefcountLayout {
  uint64_t table_clusters = 1;
  uint64_t blocks = 1;
};
RefcountLayout refcount_layout_for(uint64_t other_clusters, uint64_t cluster_size, unsigned refcount_bits);

// Parses and validates the header. `cluster0` holds the file's first bytes:
// at least min(file_size, cluster size) of them when available (the header
// says how large a cluster is; call needed_prefix() first).
Result<Header> parse_header(ConstByteSpan cluster0, uint64_t file_size);

// How many leading bytes parse_header needs, judged from the first 104.
uint64_t needed_prefix(ConstByteSpan first_bytes, uint64_t file_size);

// Header, extensions (end marker included) and backing file name, for
// cluster 0 of a new image. Fails if they do not fit in one cluster.
Result<std::vector<uint8_t>> serialize_header(const Header& header);

}  // namespace qcowkit::qcow2

namespace qcowkit::qcow2 {

// The header area of an existing image rewritten for `next`: the fixed part
// as found on disk (`fixed`, its first header_length bytes: fields qcowkit
// does not know survive), with the autoclear bits and the backing file name
// location taken from `next`, then every extension (`next`'s backing format,
// data file and bitmaps, every other one as found), the end marker and the
// backing file name. Fails when that does not fit in the first cluster.
Result<std::vector<uint8_t>> encode_header_area(ConstByteSpan fixed, const Header& next);

}  // namespace qcowkit::qcow2
