#include "serve/nbdkit/entry_guard.hpp"

#include <cerrno>
#include <exception>
#include <new>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

// nbdkit-plugin.h declares it, but cannot be included beside
// nbdkit-filter.h; the server exports it to plugins and filters alike.
extern "C" void nbdkit_set_error(int err);

namespace qcowkit::serve::nbdkit {

void set_plugin_error(int code) noexcept { nbdkit_set_error(code); }

int report_exception(const char* entry) noexcept {
  // Nothing below may throw again: nbdkit_error formats into its own buffer.
  try {
    throw;
  } catch (const std::bad_alloc&) {
    nbdkit_error("%s: out of memory", entry);
    return ENOMEM;
  } catch (const std::exception& e) {
    nbdkit_error("%s: internal error: %s", entry, e.what());
    return EIO;
  } catch (...) {
    nbdkit_error("%s: internal error (unknown exception)", entry);
    return EIO;
  }
}

}  // namespace qcowkit::serve::nbdkit
