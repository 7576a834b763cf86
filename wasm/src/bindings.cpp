// The embind surface of qcowkit.wasm. Everything returns plain JS values:
// {value: ...} on success or {error: {code, message}} on failure, which
// wasm/js/qcowkit-api.js turns into a returned value or a thrown
// QcowkitError. No C++ exception exists in this build, and none of these
// functions aborts on bad input: the core returns errors as values.
#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <memory>
#include <string>

#include "converter.hpp"
#include "image_session.hpp"
#include "js_device.hpp"
#include "qcowkit/qcow2_options.hpp"

using emscripten::val;

namespace qcowkit::wasm {
namespace {

val error_value(const Error& error) {
  val e = val::object();
  e.set("code", error.code);
  e.set("message", error.message);
  val out = val::object();
  out.set("error", e);
  return out;
}

val ok_value(const val& value) {
  val out = val::object();
  out.set("value", value);
  return out;
}

double num(uint64_t v) { return static_cast<double>(v); }

// JS numbers arriving as byte offsets or lengths: whole, not negative, and
// below 2^53 (casting anything else to uint64_t would be undefined).
Result<uint64_t> to_u64(double v, const char* what) {
  if (!(v >= 0) || v >= 9007199254740992.0 || v != static_cast<double>(static_cast<uint64_t>(v)))
    return make_error(EINVAL, std::string(what) + " must be a whole number from 0 to 2^53");
  return static_cast<uint64_t>(v);
}

// Factories return nullptr on failure and leave the error here, because
// embind cannot return a C++ object and an error in one value.
Error g_last_error;

val last_error() { return error_value(g_last_error); }

// Emscripten numbers errno values its own way; JS learns them from here.
val errno_table() {
  val t = val::object();
  t.set("EIO", EIO);
  t.set("EINVAL", EINVAL);
  t.set("EBADF", EBADF);
  t.set("EROFS", EROFS);
  t.set("ERANGE", ERANGE);
  t.set("ENOSPC", ENOSPC);
  t.set("ENOTSUP", ENOTSUP);
  t.set("ENOENT", ENOENT);
  t.set("EFBIG", EFBIG);
  t.set("ENOMEM", ENOMEM);
  t.set("ECANCELED", ECANCELED);
  t.set("EBUSY", EBUSY);
  return t;
}

val snapshot_value(const Qcow2Snapshot& s) {
  val v = val::object();
  v.set("id", s.id);
  v.set("name", s.name);
  v.set("virtualSize", num(s.virtual_size));
  v.set("vmStateSize", num(s.vm_state_size));
  v.set("dateSec", s.date_sec);
  v.set("dateNsec", s.date_nsec);
  v.set("vmClockNsec", num(s.vm_clock_nsec));
  if (s.icount != UINT64_MAX) v.set("icount", num(s.icount));
  return v;
}

val qcow2_info(Qcow2Image& image, val info) {
  const Qcow2Details d = image.details();
  info.set("version", d.version);
  info.set("compat", std::string(qcow2_compat_name(d.version)));
  info.set("clusterSize", d.cluster_size);
  info.set("refcountBits", d.refcount_bits);
  info.set("compressionType", std::string(to_string(d.compression_type)));
  info.set("lazyRefcounts", d.lazy_refcounts);
  info.set("extendedL2", d.extended_l2);
  info.set("dirty", d.dirty);
  info.set("corrupt", d.corrupt || image.is_corrupt());
  info.set("bitmapsConsistent", d.bitmaps_consistent);
  if (!d.backing_file.empty()) info.set("backingFile", d.backing_file);
  if (!d.backing_format.empty()) info.set("backingFormat", d.backing_format);
  if (!d.data_file.empty()) info.set("dataFile", d.data_file);
  val snapshots = val::array();
  for (const auto& s : d.snapshots) snapshots.call<void>("push", snapshot_value(s));
  info.set("snapshots", snapshots);
  val bitmaps = val::array();
  for (const auto& b : d.bitmaps) {
    val bv = val::object();
    bv.set("name", b.name);
    bv.set("granularity", num(uint64_t{1} << b.granularity_bits));
    bv.set("flags", b.flags);
    bitmaps.call<void>("push", bv);
  }
  info.set("bitmaps", bitmaps);
  val features = val::object();
  features.set("incompatible", num(d.incompatible_features));
  features.set("compatible", num(d.compatible_features));
  features.set("autoclear", num(d.autoclear_features));
  info.set("featureBits", features);
  return info;
}

val check_value(const CheckReport& r) {
  val v = val::object();
  v.set("corruptions", num(r.corruptions));
  v.set("leaks", num(r.leaks));
  v.set("checkErrors", num(r.check_errors));
  v.set("imageEndOffset", num(r.image_end_offset));
  v.set("totalClusters", num(r.total_clusters));
  v.set("allocatedClusters", num(r.allocated_clusters));
  v.set("fragmentedClusters", num(r.fragmented_clusters));
  v.set("compressedClusters", num(r.compressed_clusters));
  val messages = val::array();
  for (const auto& m : r.messages) messages.call<void>("push", m);
  v.set("messages", messages);
  return v;
}

class WasmConverter {
 public:
  explicit WasmConverter(std::unique_ptr<Converter> c) : converter_(std::move(c)) {}

  val step(double budget) {
    auto bytes = to_u64(budget, "step budget");
    if (!bytes.ok()) return error_value(bytes.error());
    auto r = converter_->step(*bytes);
    if (!r.ok()) return error_value(r.error());
    val v = val::object();
    v.set("done", num(r->done));
    v.set("total", num(r->total));
    v.set("finished", r->finished);
    return ok_value(v);
  }

  val close() {
    Status st = converter_->close();
    return st.ok() ? ok_value(val::undefined()) : error_value(st.error());
  }

 private:
  std::unique_ptr<Converter> converter_;
};

class WasmImage {
 public:
  // The backing file, if any, is either another opened image (`backing`,
  // e.g. a qcow2 base) or a plain JS device read as raw (`backing_id`).
  // `snapshot` (an ID or name; empty: the current state) opens a qcow2
  // image's internal snapshot, read-only.
  static std::unique_ptr<WasmImage> open(int device_id, std::string format, WasmImage* backing,
                                         int backing_id, std::string snapshot) {
    auto fail = [](Error e) {
      g_last_error = std::move(e);
      return std::unique_ptr<WasmImage>();
    };
    OpenRequest request;
    if (format == "qcow2" || format == "raw")
      request.format = format;
    else if (format != "auto" && !format.empty())
      return fail(make_error(EINVAL, "unknown format '" + format + "' (use auto, qcow2 or raw)"));
    if (backing) {
      request.backing = backing->session_->layer();
    } else if (backing_id >= 0) {
      auto backing = JsDevice::attach(backing_id);
      if (!backing.ok()) return fail(with_context(std::move(backing).error(), "backing file"));
      request.backing = raw_layer(*backing);
    }
    request.snapshot = std::move(snapshot);
    auto file = JsDevice::attach(device_id);
    if (!file.ok()) return fail(std::move(file).error());
    auto session = ImageSession::open(*file, request);
    if (!session.ok()) return fail(std::move(session).error());
    return std::make_unique<WasmImage>(std::move(session).value());
  }

  explicit WasmImage(std::unique_ptr<ImageSession> s) : session_(std::move(s)) {}

  val info() {
    val v = val::object();
    v.set("format", session_->format());
    v.set("virtualSize", num(session_->virtual_size()));
    v.set("fileSize", num(session_->file().info().size));
    if (Qcow2Image* q = session_->qcow2()) qcow2_info(*q, v);
    return ok_value(v);
  }

  val map(double offset, double length) {
    auto from = to_u64(offset, "map offset");
    if (!from.ok()) return error_value(from.error());
    auto bytes = to_u64(length, "map length");
    if (!bytes.ok()) return error_value(bytes.error());
    auto runs = session_->map(*from, *bytes);
    if (!runs.ok()) return error_value(runs.error());
    val out = val::array();
    for (const MapRun& r : *runs) {
      val v = val::object();
      v.set("start", num(r.start));
      v.set("length", num(r.length));
      v.set("depth", r.depth);
      v.set("present", r.present);
      v.set("zero", r.zero);
      v.set("data", r.data);
      v.set("compressed", r.compressed);
      if (r.offset) v.set("offset", num(*r.offset));
      out.call<void>("push", v);
    }
    return ok_value(out);
  }

  val mapSummary(int bins) {
    auto summary = session_->map_summary(bins > 0 ? static_cast<uint32_t>(bins) : 0);
    if (!summary.ok()) return error_value(summary.error());
    // Four numbers per bin, in a Float64Array: [data, zero, unallocated, compressed, ...].
    val out = val::global("Float64Array").new_(summary->size() * 4);
    for (size_t i = 0; i < summary->size(); ++i) {
      const MapBin& b = (*summary)[i];
      out.set(i * 4 + 0, num(b.data));
      out.set(i * 4 + 1, num(b.zero));
      out.set(i * 4 + 2, num(b.unallocated));
      out.set(i * 4 + 3, num(b.compressed));
    }
    return ok_value(out);
  }

  val check() {
    auto report = session_->check();
    if (!report.ok()) return error_value(report.error());
    return ok_value(check_value(*report));
  }

  val read(double offset, double length) {
    auto from = to_u64(offset, "read offset");
    if (!from.ok()) return error_value(from.error());
    auto bytes = to_u64(length, "read length");
    if (!bytes.ok()) return error_value(bytes.error());
    if (*bytes > (256u << 20))
      return error_value(make_error(EINVAL, "read: length must be 0 .. 256 MiB per call"));
    std::vector<uint8_t> buffer(static_cast<size_t>(*bytes));
    Status st = session_->guest().read(*from, ByteSpan(buffer));
    if (!st.ok()) return error_value(st.error());
    val view = val(emscripten::typed_memory_view(buffer.size(), buffer.data()));
    return ok_value(val::global("Uint8Array").new_(view));  // a copy owned by JS
  }

  // part_start < 0: the whole image; otherwise only [part_start, part_end).
  std::unique_ptr<WasmConverter> startConvert(int sink_id, std::string to, bool compress,
                                              int cluster_size, double part_start, double part_end) {
    ConvertOptions options;
    options.compress = compress;
    if (part_start >= 0) {
      auto start = to_u64(part_start, "part start");
      auto end = to_u64(part_end, "part end");
      if (!start.ok() || !end.ok()) {
        g_last_error = !start.ok() ? start.error() : end.error();
        return nullptr;
      }
      options.part = true;
      options.part_start = *start;
      options.part_end = *end;
    }
    if (to == "qcow2")
      options.to = ImageFormat::qcow2;
    else if (to != "raw") {
      g_last_error = make_error(EINVAL, "convert: unknown target format '" + to + "' (use raw or qcow2)");
      return nullptr;
    }
    if (cluster_size > 0) options.cluster_size = static_cast<uint32_t>(cluster_size);
    auto sink = JsDevice::attach(sink_id);
    if (!sink.ok()) {
      g_last_error = with_context(std::move(sink).error(), "convert destination");
      return nullptr;
    }
    auto converter = Converter::start(*session_, *sink, options);
    if (!converter.ok()) {
      g_last_error = std::move(converter).error();
      return nullptr;
    }
    return std::make_unique<WasmConverter>(std::move(converter).value());
  }

  val close() {
    Status st = session_->close();
    return st.ok() ? ok_value(val::undefined()) : error_value(st.error());
  }

 private:
  std::unique_ptr<ImageSession> session_;
};

}  // namespace
}  // namespace qcowkit::wasm

EMSCRIPTEN_BINDINGS(qcowkit) {
  using namespace qcowkit::wasm;
  emscripten::function("lastError", &last_error);
  emscripten::function("errnoTable", &errno_table);
  emscripten::class_<WasmConverter>("WasmConverter")
      .function("step", &WasmConverter::step)
      .function("close", &WasmConverter::close);
  emscripten::class_<WasmImage>("WasmImage")
      .class_function("open", &WasmImage::open, emscripten::allow_raw_pointers())
      .function("info", &WasmImage::info)
      .function("map", &WasmImage::map)
      .function("mapSummary", &WasmImage::mapSummary)
      .function("check", &WasmImage::check)
      .function("read", &WasmImage::read)
      .function("startConvert", &WasmImage::startConvert)
      .function("close", &WasmImage::close);
}
