// nbdkit-qcow2-plugin: serves a qcow2 image over NBD.
//
// A thin adapter: the image's lifecycle (open, reopen for writing, close)
// is here; what each request does is the serving layer's (serve/), which the
// qcow2 filter shares. Every entry point runs under the serving layer's
// exception guard (applied where the callbacks are registered, below).
// All connections share one open image (see ServedImage), which is what
// makes multi-conn honest: a flush on any connection flushes the one image.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "plugin_options.hpp"
#include "qcowkit/build_info.hpp"
#include "qcowkit/codec.hpp"
#include "serve/nbdkit/entry_guard.hpp"
#include "serve/nbdkit/requests.hpp"
#include "served_image.hpp"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

using namespace qcowkit;
using namespace qcowkit::plugin;
namespace requests = qcowkit::serve::nbdkit;
using qcowkit::serve::nbdkit::guard;

namespace {

PluginOptions g_options;

// The served image. after_fork opens it read-only; the first read-write
// connection reopens it read-write: nbdkit gives plugins no other way to
// learn of -r.
std::mutex g_mutex;
std::shared_ptr<ServedImage> g_served;
int g_connections = 0;
// Set when the file cannot be opened for writing (permissions, read-only
// filesystem): the image is then served read-only, as nbdkit's file plugin does.
bool g_write_denied = false;

struct Connection {
  std::shared_ptr<ServedImage> served;
  bool readonly;
};

serve::ExportedImage& exported_of(void* handle) {
  return static_cast<Connection*>(handle)->served->exported();
}
const char* name() { return g_options.file.c_str(); }

// A plugin hands its errno to nbdkit_set_error; the serving layer's
// request functions (shared with the filter) store it in `err`. Call the
// request first, then this: as two arguments of one call, `err` could be
// read before the request ran.
int with_errno(int result, int err) {
  if (result == -1) nbdkit_set_error(err > 0 ? err : EIO);
  return result;
}

int fail_config(const Error& error) {
  nbdkit_error("qcow2: %s", error.message.c_str());
  return -1;
}

// --- configuration ---------------------------------------------------------

int qcow2_config(const char* key, const char* value) {
  std::string v = value;
  if (std::string(key) == "file") {
    // nbdkit may change directory when it daemonizes: keep an absolute path.
    char* absolute = nbdkit_absolute_path(value);
    if (!absolute) return -1;
    v = absolute;
    std::free(absolute);
  }
  Status st = apply_option(g_options, key, v, requests::value_parsers());
  return st.ok() ? 0 : fail_config(st.error());
}

int qcow2_config_complete() {
  Status st = validate_options(g_options);
  return st.ok() ? 0 : fail_config(st.error());
}

void qcow2_dump_plugin() {
  const CodecSet& codecs = builtin_codecs();
  std::printf("qcowkit_version=%s\n", QCOWKIT_VERSION);
  std::printf("qcowkit_git_revision=%s\n", QCOWKIT_GIT_REVISION);
  std::printf("qcowkit_qcow2_versions=2,3\n");
  std::printf("qcowkit_compression=%s%s%s\n", codecs.deflate ? "zlib" : "",
              codecs.deflate && codecs.zstd ? "," : "", codecs.zstd ? "zstd" : "");
  std::printf("qcowkit_locking=qemu-ofd\n");
  std::printf("qcowkit_backing=raw,qcow2\n");
  std::fflush(stdout);
}

// Checks everything that can be checked before the server listens, so a
// missing, hostile or busy image stops nbdkit with a clear message and a
// failing exit status. Nothing stays open: nbdkit forks after this (to
// daemonize, or for --run), and a descriptor left in the parent would keep
// the image locked for as long as the parent lives.
int qcow2_get_ready() {
  auto created = ServedImage::create_if_missing(g_options);
  if (!created.ok()) return fail_config(created.error());
  if (*created) nbdkit_debug("created %s", g_options.file.c_str());
  if (!g_options.create_size && access(g_options.file.c_str(), F_OK) != 0) {
    nbdkit_error("qcow2: %s: the image does not exist (add create=SIZE to make a new one)",
                 g_options.file.c_str());
    return -1;
  }
  auto probe = ServedImage::open(g_options, false);
  if (!probe.ok()) return fail_config(probe.error());
  Status st = (*probe)->close();
  return st.ok() ? 0 : fail_config(st.error());
}

// Opens the image for serving, in the process that serves. Read-only for
// now; the first read-write connection reopens it read-write.
int qcow2_after_fork() {
  auto served = ServedImage::open(g_options, false);
  if (!served.ok()) return fail_config(served.error());
  std::lock_guard lock(g_mutex);
  g_served = std::move(served).value();
  return 0;
}

// Flushes and closes the image once nbdkit is done with every connection:
// on SIGTERM, --run finishing, or the parent exiting.
void qcow2_cleanup() {
  std::lock_guard lock(g_mutex);
  if (!g_served) return;
  Status st = g_served->close();
  if (!st.ok()) nbdkit_error("%s: closing: %s", name(), st.error().message.c_str());
  g_served.reset();
}

void qcow2_unload() { qcow2_cleanup(); }

// --- connections -----------------------------------------------------------

void* qcow2_open(int readonly) {
  std::lock_guard lock(g_mutex);
  if (!g_served) {
    nbdkit_error("%s: the image is not open", g_options.file.c_str());
    return nullptr;
  }
  // A snapshot is served read-only: no reopen for writing.
  if (!readonly && !g_served->writable() && !g_write_denied && g_options.serve.snapshot.empty()) {
    if (g_connections > 0) {
      nbdkit_error("%s: cannot reopen read-write while read-only connections are open",
                   g_options.file.c_str());
      nbdkit_set_error(EBUSY);
      return nullptr;
    }
    // Drop the read-only open (and its reader lock) first: our own reader
    // lock would otherwise count as someone else using the image.
    (void)g_served->close();
    g_served.reset();
    auto writable = ServedImage::open(g_options, true);
    const int code = writable.ok() ? 0 : writable.error().code;
    if (code == EACCES || code == EROFS) {
      nbdkit_debug("%s: serving read-only: %s", g_options.file.c_str(),
                   writable.error().message.c_str());
      g_write_denied = true;
    } else if (!writable.ok()) {
      nbdkit_error("qcow2: %s", writable.error().message.c_str());
    }
    if (!writable.ok()) {
      auto back = ServedImage::open(g_options, false);
      if (!back.ok()) {
        nbdkit_error("qcow2: %s", back.error().message.c_str());
        nbdkit_set_error(back.error().code);
        return nullptr;
      }
      g_served = std::move(back).value();
      if (!g_write_denied) {
        nbdkit_set_error(code);
        return nullptr;
      }
    } else {
      g_served = std::move(writable).value();
    }
  }
  auto* connection = new Connection{g_served, readonly != 0};
  ++g_connections;
  return connection;
}

void qcow2_close(void* handle) {
  std::lock_guard lock(g_mutex);
  --g_connections;
  delete static_cast<Connection*>(handle);
}

int64_t qcow2_get_size(void* handle) {
  return static_cast<int64_t>(exported_of(handle).size());
}

int qcow2_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  return requests::block_size(exported_of(handle), minimum, preferred, maximum);
}

int qcow2_can_write(void* handle) {
  auto* c = static_cast<Connection*>(handle);
  return !c->readonly && c->served->exported().can_write();
}

int qcow2_can_trim(void* handle) { return exported_of(handle).can_trim(); }
int qcow2_yes(void*) { return 1; }
int qcow2_can_fua(void*) { return NBDKIT_FUA_NATIVE; }
int qcow2_can_cache(void*) { return NBDKIT_CACHE_NATIVE; }
int qcow2_thread_model() { return NBDKIT_THREAD_MODEL_PARALLEL; }

// --- data: the serving layer's, shared with the qcow2 filter ---------------

int qcow2_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  int err = 0;
  const int r = requests::pread(exported_of(handle), name(), buf, count, offset, &err);
  return with_errno(r, err);
}

int qcow2_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  int err = 0;
  const int r = requests::pwrite(exported_of(handle), name(), buf, count, offset, flags, &err);
  return with_errno(r, err);
}

int qcow2_flush(void* handle, uint32_t) {
  int err = 0;
  const int r = requests::flush(exported_of(handle), name(), &err);
  return with_errno(r, err);
}

int qcow2_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  int err = 0;
  const int r = requests::trim(exported_of(handle), name(), count, offset, flags, &err);
  return with_errno(r, err);
}

int qcow2_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  int err = 0;
  const int r = requests::zero(exported_of(handle), name(), count, offset, flags, &err);
  return with_errno(r, err);
}

int qcow2_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents* extents) {
  int err = 0;
  const int r = requests::extents(exported_of(handle), name(), count, offset, flags, extents, &err);
  return with_errno(r, err);
}

int qcow2_cache(void* handle, uint32_t count, uint64_t offset, uint32_t) {
  int err = 0;
  const int r = requests::cache(exported_of(handle), name(), count, offset, &err);
  return with_errno(r, err);
}

struct nbdkit_plugin make_plugin() {
  struct nbdkit_plugin p {};
  p.name = "qcow2";
  p.longname = "qcowkit qcow2 plugin";
  p.version = QCOWKIT_VERSION;
  p.description = "Serves a qcow2 image read-write, in parallel, with QEMU-compatible locking.";
  p.unload = guard<"unload", qcow2_unload>;
  p.config = guard<"config", qcow2_config>;
  p.config_complete = guard<"config_complete", qcow2_config_complete>;
  p.config_help = plugin_config_help();
  p.magic_config_key = "file";
  p.dump_plugin = guard<"dump_plugin", qcow2_dump_plugin>;
  p.get_ready = guard<"get_ready", qcow2_get_ready>;
  p.after_fork = guard<"after_fork", qcow2_after_fork>;
  p.cleanup = guard<"cleanup", qcow2_cleanup>;
  p.thread_model = guard<"thread_model", qcow2_thread_model>;
  p.open = guard<"open", qcow2_open>;
  p.close = guard<"close", qcow2_close>;
  p.get_size = guard<"get_size", qcow2_get_size>;
  p.block_size = guard<"block_size", qcow2_block_size>;
  p.can_write = guard<"can_write", qcow2_can_write>;
  p.can_flush = guard<"can_flush", qcow2_yes>;
  p.can_trim = guard<"can_trim", qcow2_can_trim>;
  p.can_zero = guard<"can_zero", qcow2_yes>;
  p.can_fast_zero = guard<"can_fast_zero", qcow2_yes>;
  p.can_fua = guard<"can_fua", qcow2_can_fua>;
  p.can_extents = guard<"can_extents", qcow2_yes>;
  p.can_multi_conn = guard<"can_multi_conn", qcow2_yes>;
  p.can_cache = guard<"can_cache", qcow2_can_cache>;
  p.pread = guard<"pread", qcow2_pread>;
  p.pwrite = guard<"pwrite", qcow2_pwrite>;
  p.flush = guard<"flush", qcow2_flush>;
  p.trim = guard<"trim", qcow2_trim>;
  p.zero = guard<"zero", qcow2_zero>;
  p.extents = guard<"extents", qcow2_extents>;
  p.cache = guard<"cache", qcow2_cache>;
  p.errno_is_preserved = 0;
  return p;
}

struct nbdkit_plugin qcow2_plugin = make_plugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(qcow2_plugin)
