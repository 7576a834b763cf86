// The "-o key=value,..." options of create and convert, turned into the
// core's Qcow2CreateOptions (names and values as qemu-img spells them).
#pragma once

#include <map>
#include <string>

#include "qcowkit/qcow2.hpp"

namespace qcowkit::cli {

// Applies `options` on top of `out`. Unknown keys and bad values fail with
// EINVAL naming the key.
Status apply_qcow2_options(const std::map<std::string, std::string>& options,
                           Qcow2CreateOptions& out);

// "fmt=qcow2 cluster_size=65536 ... size=N", for the "Formatting" line.
std::string describe_qcow2_options(const Qcow2CreateOptions& options);

}  // namespace qcowkit::cli
