// Image locking that QEMU sees, and that sees QEMU.
//
// QEMU (block/file-posix.c) expresses "I use this image" with open file
// description (OFD) byte-range locks: it holds a shared lock on byte 100 + n
// for every permission n it holds, and on byte 200 + n for every permission n
// it refuses to share. Before it trusts its own locks it tests, with an
// exclusive probe, that nobody else refuses what it wants (bytes 200 + n) and
// that nobody else holds what it refuses to share (bytes 100 + n).
// qemu-img, qemu-io, qemu-nbd and QEMU itself all do this, so taking the same
// bytes makes qcowkit and QEMU refuse to write one image at the same time.
//
// The locks belong to the file description: they vanish when the descriptor
// (and every duplicate of it) is closed, also when the process is killed.
#pragma once

#include <cstdint>
#include <string>

#include "qcowkit/result.hpp"

namespace qcowkit {

// QEMU's permission bit numbers (BLK_PERM_*): lock byte = base + bit number.
enum QemuPermission : uint32_t {
  qemu_perm_consistent_read = 1u << 0,
  qemu_perm_write = 1u << 1,
  qemu_perm_write_unchanged = 1u << 2,
  qemu_perm_resize = 1u << 3,
};

inline constexpr int qemu_lock_perm_base = 100;
inline constexpr int qemu_lock_shared_base = 200;

enum class ImageLockMode {
  // Reads; lets others read too, but nobody may write or resize meanwhile
  // (what `qemu-io -r` and `qemu-img info` take).
  reader,
  // Reads, writes and resizes; lets others only read inconsistently
  // (what a read-write qemu-io, qemu-nbd or a running VM take).
  writer,
};

// Takes QEMU-compatible locks for `mode` on `fd` (a descriptor of the image
// file; `name` is only used in messages). Fails with EBUSY, naming the file
// and the permission in conflict, when another process (or another open of the
// file in this one) uses the image in an incompatible way; nothing stays
// locked then. Fails with ENOLCK when the filesystem has no OFD locks.
Status lock_image(int fd, const std::string& name, ImageLockMode mode);

// Drops every lock lock_image() may have taken on `fd`.
Status unlock_image(int fd, const std::string& name);

}  // namespace qcowkit
