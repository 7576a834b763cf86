// nbdkit-qcow2-filter: serves the guest contents of the qcow2 image whose
// bytes the plugin below supplies (`nbdkit --filter=qcow2 file disk.qcow2`,
// `... curl URL`, `... nbd socket=S`), read-write when the plugin is.
//
// A thin adapter, like the plugin: the image stack is ImageOverNext, every
// request is the serving layer's (serve/nbdkit/requests.hpp, shared with
// the plugin), every callback runs under its exception guard (applied
// where they are registered, below).
//
// One image per export name, shared by every connection to it, on a plugin
// context of its own (nbdkit_next_context_open with shared=1): two qcow2
// engines on one file would corrupt it, and one engine is what keeps
// multi-conn honest (a flush on any connection flushes the one image).
// Connections still open their usual plugin context, which stays unused.
//
// Like the plugin, the image is opened read-only for a read-only first
// client (nbdkit -r: then nothing, not even the header, is ever written)
// and reopened read-write for the first read-write client if no other is
// connected.
#include <map>
#include <memory>
#include <mutex>
#include <string>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "image_over_next.hpp"
#include "qcow2_filter_options.hpp"
#include "qcowkit/build_info.hpp"
#include "serve/nbdkit/entry_guard.hpp"
#include "serve/nbdkit/requests.hpp"

using namespace qcowkit;
using namespace qcowkit::filter;
namespace requests = qcowkit::serve::nbdkit;
using qcowkit::serve::nbdkit::guard;

namespace {

struct Export {
  std::string name;
  std::string log_name;         // "qcow2: export 'NAME'": how request errors name it
  nbdkit_next* next = nullptr;  // the shared plugin context, while an image is open
  std::unique_ptr<ImageOverNext> image;
  int connections = 0;
  bool write_denied = false;    // the plugin or the image allows no writes
};

struct Connection {
  Export* exp;
  bool readonly;
};

Qcow2FilterOptions options;
int thread_model = NBDKIT_THREAD_MODEL_PARALLEL;
std::mutex exports_mutex;
std::map<std::string, std::unique_ptr<Export>> exports;

Connection* conn(void* handle) { return static_cast<Connection*>(handle); }
serve::ExportedImage& exported_of(void* handle) { return conn(handle)->exp->image->exported(); }
const char* name_of(void* handle) { return conn(handle)->exp->log_name.c_str(); }

int fail_config(const Status& st) {
  nbdkit_error("qcow2: %s", st.error().message.c_str());
  return -1;
}

// Closes the export's image and its plugin context (exports_mutex held).
void close_image(Export& exp) {
  if (exp.image) {
    Status st = exp.image->close();
    if (!st.ok())
      nbdkit_error("%s: closing: %s", exp.log_name.c_str(), st.error().message.c_str());
    exp.image.reset();
  }
  if (exp.next) {
    exp.next->finalize(exp.next);
    nbdkit_next_context_close(exp.next);
    exp.next = nullptr;
  }
}

// Opens the export's plugin context and the image on it (exports_mutex
// held); the errno goes to *err.
bool open_image(Export& exp, nbdkit_backend* backend, bool readonly, int* err) {
  exp.next = nbdkit_next_context_open(backend, readonly, exp.name.c_str(), 1);
  if (exp.next && exp.next->prepare(exp.next) == -1) {
    nbdkit_next_context_close(exp.next);
    exp.next = nullptr;
  }
  if (!exp.next) {
    nbdkit_error("%s: cannot open a plugin context for the image", exp.log_name.c_str());
    *err = EIO;
    return false;
  }
  // A serialized server still calls us from several threads over the life
  // of the export: NextDevice keeps the plugin's calls one at a time.
  auto image = ImageOverNext::open(exp.next, options, !readonly,
                                   thread_model != NBDKIT_THREAD_MODEL_PARALLEL);
  if (!image.ok()) {
    nbdkit_error("%s: %s", exp.log_name.c_str(), image.error().message.c_str());
    *err = image.error().code > 0 ? image.error().code : EIO;
    close_image(exp);
    return false;
  }
  exp.image = std::move(image).value();
  exp.write_denied = !readonly && !exp.image->writable();
  if (!exp.image->read_only_reason().empty())
    nbdkit_error("%s: serving read-only: %s", exp.log_name.c_str(),
                 exp.image->read_only_reason().c_str());
  if (exp.image->created())
    nbdkit_debug("%s: created a qcow2 image of %llu bytes", exp.log_name.c_str(),
                 static_cast<unsigned long long>(*options.create_size));
  return true;
}

Connection* open_connection(nbdkit_backend* backend, bool readonly, const char* exportname,
                            int* err) {
  std::lock_guard lock(exports_mutex);
  auto& slot = exports[exportname];
  if (!slot) {
    slot = std::make_unique<Export>();
    slot->name = exportname;
    slot->log_name = std::string("qcow2: export '") + exportname + "'";
  }
  Export& exp = *slot;
  if (!exp.image) {
    if (!open_image(exp, backend, readonly, err)) return nullptr;
  } else if (!readonly && !exp.image->writable() && !exp.write_denied &&
             options.serve.snapshot.empty()) {
    if (exp.connections > 0) {
      nbdkit_error("%s: cannot reopen read-write while read-only connections are open",
                   exp.log_name.c_str());
      *err = EBUSY;
      return nullptr;
    }
    close_image(exp);
    if (!open_image(exp, backend, false, err)) return nullptr;
  }
  ++exp.connections;
  return new Connection{&exp, readonly};
}

// ---- configuration and lifecycle ----

int q_config(nbdkit_next_config* next, nbdkit_backend* nxdata, const char* key, const char* value) {
  if (!is_qcow2_option(key)) return next(nxdata, key, value);
  std::string v = value;
  if (std::string(key) == "qcow2-backing") {
    // nbdkit may change directory when it daemonizes: keep an absolute path.
    char* absolute = nbdkit_absolute_path(value);
    if (!absolute) return -1;
    v = absolute;
    free(absolute);
  }
  Status st = apply_qcow2_option(options, key, v, requests::value_parsers());
  return st.ok() ? 0 : fail_config(st);
}

int q_config_complete(nbdkit_next_config_complete* next, nbdkit_backend* nxdata) {
  Status st = check_qcow2_options(options);
  return st.ok() ? next(nxdata) : fail_config(st);
}

int q_get_ready(int model) {
  thread_model = model;
  return 0;
}

void q_cleanup(nbdkit_backend*) {
  std::lock_guard lock(exports_mutex);
  for (auto& [name, exp] : exports) close_image(*exp);
  exports.clear();
}

void* q_open(nbdkit_next_open* next, nbdkit_context* context, int readonly,
             const char* exportname, int) {
  if (next(context, readonly, exportname) == -1) return nullptr;
  int err = 0;
  Connection* c = open_connection(nbdkit_context_get_backend(context), readonly != 0, exportname, &err);
  // A filter's open has no err argument: the errno goes where a plugin's does.
  if (!c) serve::nbdkit::set_plugin_error(err);
  return c;
}

void q_close(void* handle) {
  std::lock_guard lock(exports_mutex);
  --conn(handle)->exp->connections;
  delete conn(handle);
}

// ---- what we can do ----

int64_t q_get_size(nbdkit_next*, void* handle) {
  return static_cast<int64_t>(exported_of(handle).size());
}
int q_block_size(nbdkit_next*, void* handle, uint32_t* minimum, uint32_t* preferred,
                 uint32_t* maximum) {
  return requests::block_size(exported_of(handle), minimum, preferred, maximum);
}
int q_can_write(nbdkit_next*, void* handle) {
  return !conn(handle)->readonly && exported_of(handle).can_write();
}
int q_can_flush(nbdkit_next*, void*) { return 1; }
int q_is_rotational(nbdkit_next*, void* handle) {
  return conn(handle)->exp->image->plugin_caps().is_rotational;
}
int q_can_trim(nbdkit_next*, void* handle) { return exported_of(handle).can_trim(); }
// The engine zeroes by metadata, whatever the plugin can do.
int q_can_zero(nbdkit_next*, void*) { return NBDKIT_ZERO_NATIVE; }
int q_can_fast_zero(nbdkit_next*, void*) { return 1; }
int q_can_extents(nbdkit_next*, void*) { return 1; }
// FUA is a flush of the image, which ends in a flush (or FUA write) of the
// plugin; a plugin with neither cannot make anything durable.
int q_can_fua(nbdkit_next*, void* handle) {
  const NextCaps& caps = conn(handle)->exp->image->plugin_caps();
  return caps.can_flush || caps.can_fua != NBDKIT_FUA_NONE ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}
// See the top of the file: one image per export.
int q_can_multi_conn(nbdkit_next*, void*) { return 1; }
int q_can_cache(nbdkit_next*, void*) { return NBDKIT_CACHE_NATIVE; }

// ---- data: the serving layer's, shared with the plugin ----

int q_pread(nbdkit_next*, void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t,
            int* err) {
  return requests::pread(exported_of(handle), name_of(handle), buf, count, offset, err);
}
int q_pwrite(nbdkit_next*, void* handle, const void* buf, uint32_t count, uint64_t offset,
             uint32_t flags, int* err) {
  return requests::pwrite(exported_of(handle), name_of(handle), buf, count, offset, flags, err);
}
int q_flush(nbdkit_next*, void* handle, uint32_t, int* err) {
  return requests::flush(exported_of(handle), name_of(handle), err);
}
int q_trim(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  return requests::trim(exported_of(handle), name_of(handle), count, offset, flags, err);
}
int q_zero(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags, int* err) {
  return requests::zero(exported_of(handle), name_of(handle), count, offset, flags, err);
}
int q_extents(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags,
              nbdkit_extents* extents, int* err) {
  return requests::extents(exported_of(handle), name_of(handle), count, offset, flags, extents,
                           err);
}
int q_cache(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t, int* err) {
  return requests::cache(exported_of(handle), name_of(handle), count, offset, err);
}

// nbdkit has no --dump-plugin for filters: `nbdkit -v --filter=qcow2 ...`
// logs the version here instead.
void q_load() {
  nbdkit_debug("qcowkit_version=%s qcowkit_git_revision=%s", QCOWKIT_VERSION, QCOWKIT_GIT_REVISION);
}

nbdkit_filter make_filter() {
  nbdkit_filter f{};
  f.name = "qcow2";
  f.longname = "qcowkit qcow2 filter";
  f.description = "Serves the qcow2 image the plugin below holds, read-write (qcowkit)";
  f.load = guard<"load", q_load>;
  f.config = guard<"config", q_config>;
  f.config_complete = guard<"config_complete", q_config_complete>;
  f.config_help = qcow2_filter_help();
  f.get_ready = guard<"get_ready", q_get_ready>;
  f.cleanup = guard<"cleanup", q_cleanup>;
  f.open = guard<"open", q_open>;
  f.close = guard<"close", q_close>;
  f.get_size = guard<"get_size", q_get_size>;
  f.block_size = guard<"block_size", q_block_size>;
  f.can_write = guard<"can_write", q_can_write>;
  f.can_flush = guard<"can_flush", q_can_flush>;
  f.is_rotational = guard<"is_rotational", q_is_rotational>;
  f.can_trim = guard<"can_trim", q_can_trim>;
  f.can_zero = guard<"can_zero", q_can_zero>;
  f.can_fast_zero = guard<"can_fast_zero", q_can_fast_zero>;
  f.can_extents = guard<"can_extents", q_can_extents>;
  f.can_fua = guard<"can_fua", q_can_fua>;
  f.can_multi_conn = guard<"can_multi_conn", q_can_multi_conn>;
  f.can_cache = guard<"can_cache", q_can_cache>;
  f.pread = guard<"pread", q_pread>;
  f.pwrite = guard<"pwrite", q_pwrite>;
  f.flush = guard<"flush", q_flush>;
  f.trim = guard<"trim", q_trim>;
  f.zero = guard<"zero", q_zero>;
  f.extents = guard<"extents", q_extents>;
  f.cache = guard<"cache", q_cache>;
  return f;
}

nbdkit_filter qcow2_filter = make_filter();

}  // namespace

NBDKIT_REGISTER_FILTER(qcow2_filter)
