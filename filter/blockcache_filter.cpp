// nbdkit-blockcache-filter: the core's write-back BlockCache in front of any
// nbdkit plugin. A thin adapter: option parsing in filter_options.cpp, the
// plugin as a BlockDevice in next_device.cpp, all cache logic in core.
//
// One cache per export name, shared by every connection to it: the filter
// opens one shared plugin context per export (nbdkit_next_context_open with
// shared=1) and all connections' requests, and the write-back threads, go
// through it. That is what keeps multi-conn honest: a flush on any
// connection writes back everything any connection wrote, then flushes the
// one plugin context all those writes went through.
//
// Connections still open their own plugin context (the normal next_open),
// so nbdkit's bookkeeping stays the usual one; the filter never uses it.
#include <cstring>
#include <map>
#include <memory>
#include <string>

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

#include "filter_options.hpp"
#include "next_device.hpp"
#include "qcowkit/block_cache.hpp"
#include "qcowkit/build_info.hpp"
#include "qcowkit/executor.hpp"
#include "qcowkit/mutex.hpp"
#include "serve/nbdkit/entry_guard.hpp"

using qcowkit::BlockCache;
using qcowkit::Status;
using namespace qcowkit::filter;
using qcowkit::serve::nbdkit::guard;

// `nbdkit -D blockcache.stats=1 -v` prints the cache statistics at exit.
extern "C" NBDKIT_DLL_PUBLIC int blockcache_debug_stats;
int blockcache_debug_stats = 0;

namespace {

struct Export {
  std::string name;
  nbdkit_next* next = nullptr;  // the shared plugin context
  std::shared_ptr<NextDevice> device;
  std::unique_ptr<BlockCache> cache;
};

struct Connection {
  Export* exp;
  bool readonly;
};

FilterOptions options;
int thread_model = NBDKIT_THREAD_MODEL_PARALLEL;
qcowkit::Mutex exports_mutex;
std::map<std::string, std::unique_ptr<Export>> exports QK_GUARDED_BY(exports_mutex);

// Reports a core error to nbdkit: the message to the log, the errno to the client.
int fail(const Status& st, int* err) {
  nbdkit_error("blockcache: %s", st.error().message.c_str());
  if (err) *err = st.error().code;
  return -1;
}

// Opens (once per export name) the shared plugin context and the cache on it.
Export* find_or_open_export(nbdkit_backend* backend, const char* exportname) {
  qcowkit::MutexLock lock(exports_mutex);
  auto it = exports.find(exportname);
  if (it != exports.end()) return it->second.get();

  nbdkit_next* next = nullptr;
  // Writable if the plugin allows it, whatever this first client asked.
  for (int readonly : {0, 1}) {
    next = nbdkit_next_context_open(backend, readonly, exportname, 1);
    if (next && next->prepare(next) == -1) {
      nbdkit_next_context_close(next);
      next = nullptr;
    }
    if (next) break;
  }
  if (!next) {
    nbdkit_error("blockcache: cannot open a shared plugin context for export '%s'", exportname);
    return nullptr;
  }
  auto device = NextDevice::open(next, thread_model != NBDKIT_THREAD_MODEL_PARALLEL);
  if (!device.ok()) {
    nbdkit_error("blockcache: %s", device.error().message.c_str());
    next->finalize(next);
    nbdkit_next_context_close(next);
    return nullptr;
  }
  auto exp = std::make_unique<Export>();
  exp->name = exportname;
  exp->next = next;
  exp->device = std::move(device).value();
  qcowkit::BlockCacheOptions cache_options = options.cache;
  cache_options.discard_reads_zero = exp->device->discard_reads_zero();
  if (thread_model != NBDKIT_THREAD_MODEL_PARALLEL) cache_options.writeback_parallelism = 1;
  // A plugin with large minimum blocks gets pages (and scan blocks) that big.
  const uint32_t sector = exp->device->info().sector_size;
  if (cache_options.page_size % sector != 0) cache_options.page_size = sector;
  if (cache_options.scan_block % sector != 0)
    cache_options.scan_block = (cache_options.scan_block / sector + 1) * sector;
  auto cache = BlockCache::create(exp->device, cache_options);
  if (!cache.ok()) {
    nbdkit_error("blockcache: %s", cache.error().message.c_str());
    next->finalize(next);
    nbdkit_next_context_close(next);
    return nullptr;
  }
  exp->cache = std::move(cache).value();
  nbdkit_debug("blockcache: export '%s': %s, %llu bytes of memory, read caching %s, extents %s, "
               "write-around %s",
               exportname, qcowkit::to_string(cache_options.policy),
               static_cast<unsigned long long>(cache_options.max_size),
               cache_options.cache_reads ? "on" : "off", qcowkit::to_string(cache_options.extents),
               cache_options.write_around_fast_device ? "on" : "off");
  Export* raw = exp.get();
  exports.emplace(exportname, std::move(exp));
  return raw;
}

void print_stats(const Export& exp) {
  const auto s = exp.cache->stats();
  nbdkit_debug("blockcache: export '%s': read hits %llu, misses %llu, writes %llu "
               "(%llu straight to the plugin), "
               "written back %llu bytes in %llu requests, forced write-backs %llu, "
               "write-back errors %llu, scanned %llu bytes, peak memory %llu bytes",
               exp.name.c_str(), (unsigned long long)s.read_hits,
               (unsigned long long)s.read_misses, (unsigned long long)s.write_requests,
               (unsigned long long)s.direct_writes,
               (unsigned long long)s.bytes_written_back, (unsigned long long)s.writeback_requests,
               (unsigned long long)s.forced_writebacks, (unsigned long long)s.writeback_errors,
               (unsigned long long)s.scanned_bytes, (unsigned long long)s.peak_cached_bytes);
}

Connection* conn(void* handle) { return static_cast<Connection*>(handle); }
BlockCache& cache_of(void* handle) { return *conn(handle)->exp->cache; }

// ---- configuration and lifecycle ----

int bc_config(nbdkit_next_config* next, nbdkit_backend* nxdata, const char* key,
              const char* value) {
  if (!is_filter_option(key)) return next(nxdata, key, value);
  Status st = apply_option(options, key, value);
  if (!st.ok()) {
    nbdkit_error("blockcache: %s", st.error().message.c_str());
    return -1;
  }
  return 0;
}

int bc_config_complete(nbdkit_next_config_complete* next, nbdkit_backend* nxdata) {
  Status st = check_options(options);
  if (!st.ok()) {
    nbdkit_error("blockcache: %s", st.error().message.c_str());
    return -1;
  }
  return next(nxdata);
}

int bc_get_ready(int model) {
  thread_model = model;
  return 0;
}

void bc_cleanup(nbdkit_backend*) {
  qcowkit::MutexLock lock(exports_mutex);
  for (auto& [name, exp] : exports) {
    const uint64_t unwritten = exp->cache->stats().dirty_bytes;
    Status st = exp->cache->close();
    // What was lost depends on how far close got: cached writes it could
    // not write back are gone, and after a failed final flush so may be
    // any write the plugin took since the client's last flush.
    if (!st.ok())
      nbdkit_error("blockcache: export '%s': closing at exit failed, so writes since the "
                   "client's last flush may be lost (%llu bytes were still cached): %s",
                   name.c_str(), static_cast<unsigned long long>(unwritten),
                   st.error().message.c_str());
    if (blockcache_debug_stats) print_stats(*exp);
    // The cache (and its write-back threads) must go before the plugin
    // context it writes to.
    exp->cache.reset();
    exp->device.reset();
    exp->next->finalize(exp->next);
    nbdkit_next_context_close(exp->next);
  }
  exports.clear();
}

void* bc_open(nbdkit_next_open* next, nbdkit_context* context, int readonly,
              const char* exportname, int) {
  if (next(context, readonly, exportname) == -1) return nullptr;
  Export* exp = find_or_open_export(nbdkit_context_get_backend(context), exportname);
  if (!exp) return nullptr;
  return new Connection{exp, readonly != 0};
}

void bc_close(void* handle) { delete conn(handle); }

// A closing connection writes back what is dirty (everyone's: the cache is
// shared), so disconnecting never leaves acknowledged data only in memory.
// The write-back runs on one of the core executor's threads: it belongs to
// the shared plugin context, not to this connection, and nbdkit cuts short
// plugin waits (the delay filter's, for one) made on behalf of a connection
// that is closing.
int bc_finalize(nbdkit_next*, void* handle) {
  if (conn(handle)->readonly) return 0;
  BlockCache& cache = cache_of(handle);
  Status st;
  qcowkit::Executor::shared().run_on_pool([&] { st = cache.write_back_all(); });
  return st.ok() ? 0 : fail(st, nullptr);
}

// ---- what we can do ----

const NextCaps& caps(void* handle) { return conn(handle)->exp->device->caps(); }

int64_t bc_get_size(nbdkit_next*, void* handle) {
  return static_cast<int64_t>(cache_of(handle).info().size);
}
const char* bc_export_description(nbdkit_next*, void* handle) {
  nbdkit_next* shared = conn(handle)->exp->next;
  return shared->export_description(shared);
}
int bc_block_size(nbdkit_next*, void* handle, uint32_t* minimum, uint32_t* preferred,
                  uint32_t* maximum) {
  nbdkit_next* shared = conn(handle)->exp->next;
  return shared->block_size(shared, minimum, preferred, maximum);
}
int bc_can_write(nbdkit_next*, void* handle) { return caps(handle).can_write; }
// There is always a write-back to flush, even over a plugin that cannot.
int bc_can_flush(nbdkit_next*, void*) { return 1; }
int bc_is_rotational(nbdkit_next*, void* handle) { return caps(handle).is_rotational; }
int bc_can_trim(nbdkit_next*, void* handle) { return caps(handle).can_trim; }
// Zeroes are always handled here (written as zero buffers if the plugin cannot).
int bc_can_zero(nbdkit_next*, void*) { return NBDKIT_ZERO_NATIVE; }
int bc_can_fast_zero(nbdkit_next*, void* handle) {
  return caps(handle).can_zero != NBDKIT_ZERO_NONE && caps(handle).can_fast_zero;
}
int bc_can_extents(nbdkit_next*, void*) {
  return options.cache.extents != qcowkit::ExtentMode::off;
}
// FUA is done here: the write is written back with FUA if the plugin has it,
// or followed by a plugin flush. Without either nothing can be made durable.
int bc_can_fua(nbdkit_next*, void* handle) {
  return caps(handle).can_fua != NBDKIT_FUA_NONE || caps(handle).can_flush ? NBDKIT_FUA_NATIVE
                                                                           : NBDKIT_FUA_NONE;
}
// See the top of the file: one cache and one plugin context per export.
int bc_can_multi_conn(nbdkit_next*, void*) { return 1; }
// With read caching, nbdkit turns cache requests into reads, which fill it.
int bc_can_cache(nbdkit_next*, void*) {
  return options.cache.cache_reads ? NBDKIT_CACHE_EMULATE : NBDKIT_CACHE_NONE;
}

// ---- data ----

int bc_pread(nbdkit_next*, void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t,
             int* err) {
  Status st = cache_of(handle).read(offset, qcowkit::ByteSpan(static_cast<uint8_t*>(buf), count));
  return st.ok() ? 0 : fail(st, err);
}

int bc_pwrite(nbdkit_next*, void* handle, const void* buf, uint32_t count, uint64_t offset,
              uint32_t flags, int* err) {
  Status st = cache_of(handle).write(
      offset, qcowkit::ConstByteSpan(static_cast<const uint8_t*>(buf), count),
      qcowkit::WriteFlags{(flags & NBDKIT_FLAG_FUA) != 0});
  return st.ok() ? 0 : fail(st, err);
}

int bc_flush(nbdkit_next*, void* handle, uint32_t, int* err) {
  Status st = cache_of(handle).flush();
  return st.ok() ? 0 : fail(st, err);
}

int bc_trim(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags,
            int* err) {
  Status st = cache_of(handle).discard(offset, count);
  if (st.ok() && (flags & NBDKIT_FLAG_FUA)) st = conn(handle)->exp->device->flush();
  return st.ok() ? 0 : fail(st, err);
}

int bc_zero(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags,
            int* err) {
  qcowkit::ZeroFlags z;
  z.may_trim = flags & NBDKIT_FLAG_MAY_TRIM;
  z.fast_only = flags & NBDKIT_FLAG_FAST_ZERO;
  z.fua = flags & NBDKIT_FLAG_FUA;
  Status st = cache_of(handle).write_zeroes(offset, count, z);
  if (!st.ok() && st.error().code == ENOTSUP && z.fast_only) {
    *err = ENOTSUP;  // the client falls back to a slow zero: not worth a log line
    return -1;
  }
  return st.ok() ? 0 : fail(st, err);
}

int bc_extents(nbdkit_next*, void* handle, uint32_t count, uint64_t offset, uint32_t flags,
               nbdkit_extents* extents, int* err) {
  auto result = cache_of(handle).extents(offset, count);
  if (!result.ok()) {
    nbdkit_error("blockcache: %s", result.error().message.c_str());
    *err = result.error().code;
    return -1;
  }
  for (const qcowkit::Extent& e : *result) {
    uint32_t type = 0;
    if (e.kind == qcowkit::ExtentKind::zero) type = NBDKIT_EXTENT_ZERO;
    if (e.kind == qcowkit::ExtentKind::hole) type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(extents, e.offset, e.length, type) == -1) {
      *err = errno;
      return -1;
    }
    if (flags & NBDKIT_FLAG_REQ_ONE) break;
  }
  return 0;
}

// nbdkit has no --dump-plugin for filters: `nbdkit -v --filter=blockcache ...`
// logs the version here instead.
void bc_load() {
  nbdkit_debug("qcowkit_version=%s qcowkit_git_revision=%s", QCOWKIT_VERSION, QCOWKIT_GIT_REVISION);
}

// Every callback runs under the serving layer's exception guard (the one
// the plugin and the qcow2 filter use): no C++ exception reaches nbdkit.
nbdkit_filter make_filter() {
  nbdkit_filter f{};
  f.name = "blockcache";
  f.longname = "qcowkit write-back block cache filter";
  f.description = "Bounded, parallel write-back cache with extent reporting (qcowkit)";
  f.load = guard<"load", bc_load>;
  f.config = guard<"config", bc_config>;
  f.config_complete = guard<"config_complete", bc_config_complete>;
  f.config_help = kConfigHelp;
  f.get_ready = guard<"get_ready", bc_get_ready>;
  f.cleanup = guard<"cleanup", bc_cleanup>;
  f.open = guard<"open", bc_open>;
  f.close = guard<"close", bc_close>;
  f.finalize = guard<"finalize", bc_finalize>;
  f.get_size = guard<"get_size", bc_get_size>;
  f.export_description = guard<"export_description", bc_export_description>;
  f.block_size = guard<"block_size", bc_block_size>;
  f.can_write = guard<"can_write", bc_can_write>;
  f.can_flush = guard<"can_flush", bc_can_flush>;
  f.is_rotational = guard<"is_rotational", bc_is_rotational>;
  f.can_trim = guard<"can_trim", bc_can_trim>;
  f.can_zero = guard<"can_zero", bc_can_zero>;
  f.can_fast_zero = guard<"can_fast_zero", bc_can_fast_zero>;
  f.can_extents = guard<"can_extents", bc_can_extents>;
  f.can_fua = guard<"can_fua", bc_can_fua>;
  f.can_multi_conn = guard<"can_multi_conn", bc_can_multi_conn>;
  f.can_cache = guard<"can_cache", bc_can_cache>;
  f.pread = guard<"pread", bc_pread>;
  f.pwrite = guard<"pwrite", bc_pwrite>;
  f.flush = guard<"flush", bc_flush>;
  f.trim = guard<"trim", bc_trim>;
  f.zero = guard<"zero", bc_zero>;
  f.extents = guard<"extents", bc_extents>;
  return f;
}

nbdkit_filter filter = make_filter();

}  // namespace

NBDKIT_REGISTER_FILTER(filter)
