// qcow2's own vocabulary: its creation options as qemu-img spells them
// ("-o compat=1.1,cluster_size=64k,..."), the rules they must obey, and the
// names the format gives its versions. The qcow2 layer owns these, as QEMU's
// driver owns its -o options: the CLI, the plugin and the browser pass the
// user's strings here and never hold a qcow2 rule of their own.
//
// Pure functions over values: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qcowkit/qcow2.hpp"

namespace qcowkit {

// Clusters are powers of two from 512 bytes to 2 MiB.
inline constexpr uint32_t kQcow2MinClusterSize = 512;
inline constexpr uint32_t kQcow2MaxClusterSize = 2u << 20;
bool is_valid_qcow2_cluster_size(uint64_t bytes);

// Applies qemu-img's "-o" keys (compat, cluster_size, refcount_bits,
// lazy_refcounts, extended_l2, preallocation, compression_type, backing_file,
// backing_fmt) on top of `out`, then checks the result with
// validate_qcow2_create_options except for the size. Unknown keys and bad
// values fail with EINVAL naming the key; `out` may then be partly updated.
Status apply_qcow2_create_options(const std::map<std::string, std::string>& options,
                                  Qcow2CreateOptions& out);

// Every rule a new image's options obey (Qcow2Image::create checks these):
// version 2 or 3 and what each allows, cluster size, refcount width,
// extended L2 cluster size, a size in whole sectors, the backing name length.
// With check_size false the size is not looked at (it is not known yet).
Status validate_qcow2_create_options(const Qcow2CreateOptions& options, bool check_size = true);

// "fmt=qcow2 cluster_size=65536 ... refcount_bits=16", the line qemu-img
// prints as "Formatting ...".
std::string describe_qcow2_create_options(const Qcow2CreateOptions& options);

// A persistent bitmap's flags as qemu-img info names them ("in-use", "auto").
std::vector<std::string> qcow2_bitmap_flag_names(uint32_t flags);

// "1.1" for version 3, "0.10" for version 2: the compat names qemu-img shows.
const char* qcow2_compat_name(int version);

}  // namespace qcowkit
