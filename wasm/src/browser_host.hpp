// BrowserHost: the core's Host (qcowkit/host.hpp) over the files the page
// or a worker handed the module: File objects, OPFS sync access handles,
// byte arrays, node files, each registered with the JS device bridge
// (wasm/js/bridge.js) and known here by its file name.
//
// The browser has no file system to wander: the files the user dropped
// are one flat folder. So a backing file (or any name an image gives) is
// found only when the user gave a file of that name too; its folder part
// is dropped ("/images/base.qcow2" and "../base.qcow2" both name
// "base.qcow2" among the given files), and a missing one is an ENOENT
// that says which file to add. With BackingPolicy::same_directory (what
// ImageSession asks for) that is the whole policy: nothing outside the
// given files can ever be read.
//
// Locks: there is nothing to lock against in a tab; HostOpenOptions::lock
// is ignored. Ownership: the JS side owns the registrations (it unregisters
// them when its Image closes); devices opened here close only their own
// use of one. Thread safety: none needed (the module runs on one thread);
// the class is not thread-safe.
#pragma once

#include <map>
#include <string>

#include "qcowkit/host.hpp"

namespace qcowkit::wasm {

class BrowserHost final : public Host {
 public:
  // Makes `name` (a plain file name, no '/') open the JS device `device_id`.
  // EINVAL for an empty name, a name with a '/', or one given twice.
  Status add(const std::string& name, int device_id);

  Result<std::shared_ptr<BlockDevice>> open_file(const std::string& name,
                                                 const HostOpenOptions& options) override;
  Result<std::string> canonical(const std::string& name) override;
  std::string resolve(const std::string& base, const std::string& name) override;
  std::string directory_of(const std::string& name) override;

 private:
  // The names the user gave, for messages.
  std::string given() const;

  std::map<std::string, int> files_;
};

}  // namespace qcowkit::wasm
