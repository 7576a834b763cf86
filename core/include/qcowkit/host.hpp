// Host: what opening images by name needs from the machine the core runs on
// (LevelDB's Env is the model). The core never calls the OS for this itself:
// a POSIX host serves the native builds, and a browser host (File / OPFS)
// can serve the WebAssembly one.
//
// Thread safety: implementations must be callable from several threads.
#pragma once

#include <memory>
#include <string>

#include "qcowkit/block_device.hpp"

namespace qcowkit {

struct HostOpenOptions {
  bool writable = false;
  // Take QEMU-compatible image locks for as long as the device is open: a
  // reader lock when read-only, a writer lock when writable.
  bool lock = true;
};

class Host {
 public:
  virtual ~Host() = default;

  // Opens an existing file by name.
  virtual Result<std::shared_ptr<BlockDevice>> open_file(const std::string& name,
                                                         const HostOpenOptions& options) = 0;
  // The one name of an existing file (symbolic links and ".." resolved).
  virtual Result<std::string> canonical(const std::string& name) = 0;
  // `name` as written inside the file `base`: relative names are relative to
  // the folder `base` lies in.
  virtual std::string resolve(const std::string& base, const std::string& name) = 0;
  // The folder a canonical name lies in.
  virtual std::string directory_of(const std::string& name) = 0;
};

// Files through POSIX calls, locked with OFD locks as QEMU locks images.
// The returned devices are FileDevices.
Host& posix_host();

}  // namespace qcowkit
