#include "browser_host.hpp"

#include "js_device.hpp"

namespace qcowkit::wasm {
namespace {

// The last part of a path: all given files live in one flat folder.
std::string base_name(const std::string& name) {
  const size_t slash = name.find_last_of("/\\");
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

}  // namespace

Status BrowserHost::add(const std::string& name, int device_id) {
  if (name.empty() || name.find_first_of("/\\") != std::string::npos || name == "." || name == "..")
    return make_error(EINVAL, "'" + name + "' is not a plain file name");
  if (!files_.emplace(name, device_id).second)
    return make_error(EINVAL, "two files are named '" + name + "': give each name once");
  return {};
}

std::string BrowserHost::given() const {
  std::string out;
  for (const auto& [name, id] : files_) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

Result<std::shared_ptr<BlockDevice>> BrowserHost::open_file(const std::string& name,
                                                            const HostOpenOptions& options) {
  auto it = files_.find(name);
  if (it == files_.end())
    return make_error(ENOENT, "'" + name + "' is not among the files given (" + given() +
                                  "): add it too");
  QK_ASSIGN_OR_RETURN(std::shared_ptr<JsDevice> device, JsDevice::attach(it->second));
  if (options.writable && device->info().read_only)
    return make_error(EROFS, name + ": the file was given read-only");
  return std::shared_ptr<BlockDevice>(std::move(device));
}

Result<std::string> BrowserHost::canonical(const std::string& name) {
  if (!files_.count(name))
    return make_error(ENOENT, "'" + name + "' is not among the files given (" + given() +
                                  "): add it too");
  return name;
}

std::string BrowserHost::resolve(const std::string&, const std::string& name) {
  return base_name(name);
}

std::string BrowserHost::directory_of(const std::string&) { return std::string(); }

}  // namespace qcowkit::wasm
