#include "qcowkit/image_lock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace qcowkit {

namespace {

constexpr int permission_count = 4;  // consistent read, write, write unchanged, resize

const char* permission_name(int bit) {
  switch (bit) {
    case 0: return "consistent read";
    case 1: return "write";
    case 2: return "write unchanged";
    case 3: return "resize";
  }
  return "unknown";
}

struct Permissions {
  uint32_t held;      // bytes 100 + n
  uint32_t unshared;  // bytes 200 + n
};

// The bytes QEMU 7.2 itself takes (observed in /proc/locks): a writer holds
// read, write and resize and shares neither write nor resize; a reader holds
// read and shares neither write nor resize.
Permissions permissions_for(ImageLockMode mode) {
  const uint32_t unshared = qemu_perm_write | qemu_perm_resize;
  if (mode == ImageLockMode::writer)
    return {qemu_perm_consistent_read | qemu_perm_write | qemu_perm_resize, unshared};
  return {qemu_perm_consistent_read, unshared};
}

int set_lock(int fd, int byte, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}

Error lock_failure(const std::string& name, int byte, int err) {
  if (err == EINVAL || err == ENOTSUP || err == ENOLCK)
    return make_error(ENOLCK, name + ": cannot lock byte " + std::to_string(byte) +
                                  " (the filesystem may not support OFD locks): " +
                                  std::strerror(err));
  return make_error(err, name + ": cannot lock byte " + std::to_string(byte) + ": " +
                             std::strerror(err));
}

// True when some other open file description holds a lock on `byte`.
Result<bool> byte_in_use(int fd, const std::string& name, int byte) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return lock_failure(name, byte, errno);
  return fl.l_type != F_UNLCK;
}

// Says who holds the image, by the kind QEMU's lock bytes reveal: a writer
// holds the "write" permission (a running VM, qemu-io, qemu-nbd, nbdkit
// serving it read-write); a reader only refuses to share it (qemu-img info or
// check, a read-only server), which still keeps writers out.
Error conflict(int fd, const std::string& name, int bit, bool they_hold_it) {
  auto writer = byte_in_use(fd, name, qemu_lock_perm_base + 1);
  const bool by_writer = they_hold_it || (writer.ok() && *writer);
  std::string what = they_hold_it
                         ? std::string("another process holds the \"") + permission_name(bit) +
                               "\" permission"
                         : std::string("another process does not share the \"") +
                               permission_name(bit) + "\" permission";
  const std::string kind =
      by_writer ? "by a writer (a running VM, qemu-io, qemu-nbd or an NBD server such as nbdkit "
                  "serving it read-write)"
                : "by a reader (such as qemu-img info or check, or a read-only NBD server)";
  return make_error(EBUSY, name + ": the image is in use " + kind + ": " + what +
                               " (QEMU-style lock byte " +
                               std::to_string((they_hold_it ? qemu_lock_perm_base
                                                            : qemu_lock_shared_base) + bit) +
                               ")");
}

Status apply(int fd, const std::string& name, const Permissions& p) {
  for (int bit = 0; bit < permission_count; ++bit) {
    if (p.held & (1u << bit)) {
      if (int err = set_lock(fd, qemu_lock_perm_base + bit, F_RDLCK))
        return lock_failure(name, qemu_lock_perm_base + bit, err);
    }
    if (p.unshared & (1u << bit)) {
      if (int err = set_lock(fd, qemu_lock_shared_base + bit, F_RDLCK))
        return lock_failure(name, qemu_lock_shared_base + bit, err);
    }
  }
  return {};
}

// Our own locks live on `fd`'s description, so F_OFD_GETLK only reports
// other descriptions: exactly the "someone else" QEMU tests for.
Status check(int fd, const std::string& name, const Permissions& p) {
  for (int bit = 0; bit < permission_count; ++bit) {
    if (p.held & (1u << bit)) {
      QK_ASSIGN_OR_RETURN(bool refused, byte_in_use(fd, name, qemu_lock_shared_base + bit));
      if (refused) return conflict(fd, name, bit, false);
    }
    if (p.unshared & (1u << bit)) {
      QK_ASSIGN_OR_RETURN(bool held, byte_in_use(fd, name, qemu_lock_perm_base + bit));
      if (held) return conflict(fd, name, bit, true);
    }
  }
  return {};
}

}  // namespace

Status lock_image(int fd, const std::string& name, ImageLockMode mode) {
  const Permissions p = permissions_for(mode);
  // Lock first, then test, as QEMU does: two openers racing both see each
  // other and both back off, rather than both winning.
  Status st = apply(fd, name, p);
  if (st.ok()) st = check(fd, name, p);
  if (!st.ok()) {
    (void)unlock_image(fd, name);
    return st;
  }
  return {};
}

Status unlock_image(int fd, const std::string& name) {
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = qemu_lock_perm_base;
  fl.l_len = qemu_lock_shared_base + 64 - qemu_lock_perm_base;
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
    return make_error(errno, name + ": cannot unlock: " + std::strerror(errno));
  return {};
}

}  // namespace qcowkit
