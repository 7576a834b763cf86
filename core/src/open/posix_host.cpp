// The POSIX host: FileDevice for files, OFD locks as QEMU takes them.
#include <limits.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>

#include "qcowkit/file_device.hpp"
#include "qcowkit/host.hpp"
#include "qcowkit/image_lock.hpp"

namespace qcowkit {
namespace {

class PosixHost final : public Host {
 public:
  Result<std::shared_ptr<BlockDevice>> open_file(const std::string& name,
                                                 const HostOpenOptions& options) override {
    FileOpenOptions fo;
    fo.read_only = !options.writable;
    auto file = FileDevice::open(name, fo);
    if (!file.ok()) return with_context(std::move(file).error(), "cannot open '" + name + "'");
    std::shared_ptr<FileDevice> device = std::move(file).value();
    if (options.lock)
      QK_TRY(lock_image(device->fd(), name, options.writable ? ImageLockMode::writer : ImageLockMode::reader));
    return std::shared_ptr<BlockDevice>(std::move(device));
  }

  Result<std::string> canonical(const std::string& name) override {
    char buf[PATH_MAX];
    if (!::realpath(name.c_str(), buf)) {
      const int err = errno;
      return make_error(err, name + ": " + std::strerror(err));
    }
    return std::string(buf);
  }

  std::string resolve(const std::string& base, const std::string& name) override {
    std::filesystem::path p(name);
    if (p.is_relative()) p = std::filesystem::path(base).parent_path() / p;
    return p.string();
  }

  std::string directory_of(const std::string& name) override {
    return std::filesystem::path(name).parent_path().string();
  }
};

}  // namespace

Host& posix_host() {
  static PosixHost host;
  return host;
}

}  // namespace qcowkit
