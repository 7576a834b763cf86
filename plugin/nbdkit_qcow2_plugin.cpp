// nbdkit-qcow2-plugin: serves a qcow2 image over NBD.
//
// A thin adapter: each nbdkit callback turns into one call on the core's
// Qcow2Image, and each core Error into nbdkit_error + nbdkit_set_error. All
// connections share one open image (see ServedImage), which is what makes
// multi-conn honest: a flush on any connection flushes the one image.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "plugin_options.hpp"
#include "qcowkit/build_info.hpp"
#include "qcowkit/codec.hpp"
#include "served_image.hpp"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

using namespace qcowkit;
using namespace qcowkit::plugin;

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

Qcow2Image& image_of(void* handle) { return static_cast<Connection*>(handle)->served->image(); }

// Reports a core error for one request: the log line names the image, the
// operation and the range; the client gets the errno.
int fail(const char* operation, uint64_t offset, uint64_t count, const Error& error) {
  nbdkit_error("%s: %s at offset %" PRIu64 " length %" PRIu64 ": %s", g_options.file.c_str(),
               operation, offset, count, error.message.c_str());
  nbdkit_set_error(error.code > 0 ? error.code : EIO);
  return -1;
}

int fail_config(const Error& error) {
  nbdkit_error("qcow2: %s", error.message.c_str());
  return -1;
}

Result<uint64_t> nbdkit_size(const std::string& value) {
  const int64_t size = nbdkit_parse_size(value.c_str());
  if (size < 0) return make_error(EINVAL, "'" + value + "' is not a size");
  return static_cast<uint64_t>(size);
}

Result<bool> nbdkit_bool(const std::string& value) {
  const int b = nbdkit_parse_bool(value.c_str());
  if (b < 0) return make_error(EINVAL, "'" + value + "' is not a boolean");
  return b != 0;
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
  Status st = apply_option(g_options, key, v, ValueParsers{nbdkit_size, nbdkit_bool});
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
  if (!st.ok()) nbdkit_error("%s: closing: %s", g_options.file.c_str(), st.error().message.c_str());
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
  if (!readonly && !g_served->writable() && !g_write_denied && g_options.snapshot.empty()) {
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
  auto* connection = new (std::nothrow) Connection{g_served, readonly != 0};
  if (!connection) {
    nbdkit_set_error(ENOMEM);
    return nullptr;
  }
  ++g_connections;
  return connection;
}

void qcow2_close(void* handle) {
  std::lock_guard lock(g_mutex);
  --g_connections;
  delete static_cast<Connection*>(handle);
}

int64_t qcow2_get_size(void* handle) {
  return static_cast<int64_t>(image_of(handle).info().size);
}

int qcow2_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  Qcow2Image& image = image_of(handle);
  const uint32_t sector = image.info().sector_size;
  *minimum = sector > 0 ? sector : 1;
  uint32_t cluster = image.cluster_size();
  if (cluster < 512) cluster = 512;
  if (cluster > (32u << 20)) cluster = 32u << 20;
  *preferred = cluster < *minimum ? *minimum : cluster;
  *maximum = 0xffffffff;
  return 0;
}

int qcow2_can_write(void* handle) {
  auto* c = static_cast<Connection*>(handle);
  return !c->readonly && c->served->writable() && !c->served->image().is_corrupt();
}

int qcow2_can_trim(void*) { return g_options.trim != TrimMode::off; }
int qcow2_yes(void*) { return 1; }
int qcow2_can_fua(void*) { return NBDKIT_FUA_NATIVE; }
int qcow2_can_cache(void*) { return NBDKIT_CACHE_NATIVE; }
int qcow2_thread_model() { return NBDKIT_THREAD_MODEL_PARALLEL; }

// --- data ------------------------------------------------------------------

int qcow2_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  Status st = image_of(handle).read(offset, ByteSpan(static_cast<uint8_t*>(buf), count));
  return st.ok() ? 0 : fail("read", offset, count, st.error());
}

int qcow2_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  WriteFlags wf;
  wf.fua = flags & NBDKIT_FLAG_FUA;
  Status st = image_of(handle).write(
      offset, ConstByteSpan(static_cast<const uint8_t*>(buf), count), wf);
  return st.ok() ? 0 : fail("write", offset, count, st.error());
}

int qcow2_flush(void* handle, uint32_t) {
  Status st = image_of(handle).flush();
  return st.ok() ? 0 : fail("flush", 0, 0, st.error());
}

int qcow2_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  Qcow2Image& image = image_of(handle);
  Status st = g_options.trim == TrimMode::zero ? image.write_zeroes(offset, count, ZeroFlags{})
                                               : image.discard(offset, count);
  if (st.ok() && (flags & NBDKIT_FLAG_FUA)) st = image.flush();
  return st.ok() ? 0 : fail("trim", offset, count, st.error());
}

int qcow2_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  Qcow2Image& image = image_of(handle);
  ZeroFlags zf;
  zf.may_trim = flags & NBDKIT_FLAG_MAY_TRIM;
  zf.fast_only = flags & NBDKIT_FLAG_FAST_ZERO;
  zf.fua = flags & NBDKIT_FLAG_FUA;
  // A fast zero that would have to write data is refused up front, so the
  // client can fall back to its own (faster for it) way.
  if (zf.fast_only && !image.can_zero_fast(offset, count)) {
    nbdkit_set_error(ENOTSUP);
    return -1;
  }
  Status st = image.write_zeroes(offset, count, zf);
  if (!st.ok() && zf.fast_only && st.error().code == ENOTSUP) {
    nbdkit_set_error(ENOTSUP);
    return -1;
  }
  return st.ok() ? 0 : fail("zero", offset, count, st.error());
}

uint32_t extent_type(ExtentKind kind) {
  switch (kind) {
    case ExtentKind::data: return 0;
    case ExtentKind::zero: return NBDKIT_EXTENT_ZERO;
    case ExtentKind::hole: return NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  }
  return 0;
}

int qcow2_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
                  struct nbdkit_extents* extents) {
  // NBD lets a reply stop short of `count` (the client asks again from where
  // it ends), so each request does a bounded amount of work: a small window
  // first, growing only while the answer is a few large extents (holes).
  // Mapping the whole range instead would make every read request on a
  // sparse image pay for a map of the rest of it.
  constexpr size_t enough_extents = 64;
  Qcow2Image& image = image_of(handle);
  const uint64_t end = offset + count;
  uint64_t pos = offset;
  uint64_t window = 64u << 20;
  for (size_t added = 0; pos < end && added < enough_extents; window *= 8) {
    const uint64_t length = std::min<uint64_t>(window, end - pos);
    auto result = image.extents(pos, length);
    if (!result.ok()) return fail("extents", pos, length, result.error());
    if (result->empty()) break;
    for (const Extent& e : *result) {
      if (nbdkit_add_extent(extents, e.offset, e.length, extent_type(e.kind)) == -1) return -1;
      if (flags & NBDKIT_FLAG_REQ_ONE) return 0;
      pos = e.offset + e.length;
      ++added;
    }
  }
  return 0;
}

// Reads the range so its metadata and data are in the caches.
int qcow2_cache(void* handle, uint32_t count, uint64_t offset, uint32_t) {
  Qcow2Image& image = image_of(handle);
  constexpr uint32_t chunk = 4u << 20;
  std::vector<uint8_t> buffer(count < chunk ? count : chunk);
  for (uint64_t done = 0; done < count;) {
    const uint32_t n = static_cast<uint32_t>(count - done < chunk ? count - done : chunk);
    Status st = image.read(offset + done, ByteSpan(buffer.data(), n));
    if (!st.ok()) return fail("cache", offset + done, n, st.error());
    done += n;
  }
  return 0;
}

struct nbdkit_plugin make_plugin() {
  struct nbdkit_plugin p {};
  p.name = "qcow2";
  p.longname = "qcowkit qcow2 plugin";
  p.version = QCOWKIT_VERSION;
  p.description = "Serves a qcow2 image read-write, in parallel, with QEMU-compatible locking.";
  p.unload = qcow2_unload;
  p.config = qcow2_config;
  p.config_complete = qcow2_config_complete;
  p.config_help = plugin_config_help;
  p.magic_config_key = "file";
  p.dump_plugin = qcow2_dump_plugin;
  p.get_ready = qcow2_get_ready;
  p.after_fork = qcow2_after_fork;
  p.cleanup = qcow2_cleanup;
  p.thread_model = qcow2_thread_model;
  p.open = qcow2_open;
  p.close = qcow2_close;
  p.get_size = qcow2_get_size;
  p.block_size = qcow2_block_size;
  p.can_write = qcow2_can_write;
  p.can_flush = qcow2_yes;
  p.can_trim = qcow2_can_trim;
  p.can_zero = qcow2_yes;
  p.can_fast_zero = qcow2_yes;
  p.can_fua = qcow2_can_fua;
  p.can_extents = qcow2_yes;
  p.can_multi_conn = qcow2_yes;
  p.can_cache = qcow2_can_cache;
  p.pread = qcow2_pread;
  p.pwrite = qcow2_pwrite;
  p.flush = qcow2_flush;
  p.trim = qcow2_trim;
  p.zero = qcow2_zero;
  p.extents = qcow2_extents;
  p.cache = qcow2_cache;
  p.errno_is_preserved = 0;
  return p;
}

struct nbdkit_plugin qcow2_plugin = make_plugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(qcow2_plugin)
