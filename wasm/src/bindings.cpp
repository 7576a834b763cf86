// The embind surface of qcowkit.wasm. Everything returns plain JS values:
// {value: ...} on success or {error: {code, message}} on failure, which
// wasm/js/qcowkit-api.js turns into a returned value or a thrown
// QcowkitError. The core returns errors as values; what it cannot (the C++
// library's exceptions: std::bad_alloc when the module's memory runs out,
// std::length_error, ...) is caught at the door: every exported function
// runs its body inside guard() (or guard_new() for the factories), so no
// C++ exception reaches JavaScript and none aborts the module. The module
// is built with WebAssembly exceptions (-fwasm-exceptions) for that.
#include <emscripten/bind.h>
#include <emscripten/val.h>

#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "browser_host.hpp"
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

// What an exception escaping `what` means, as an error value. By the time
// it is caught the failed allocation is gone, so building the message can
// allocate again.
Error exception_error(const char* what) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return make_error(ENOMEM, std::string(what) + ": out of memory (the module's memory limit was reached)");
  } catch (const std::length_error& e) {
    return make_error(ENOMEM, std::string(what) + ": a size too large to allocate (" + e.what() + ")");
  } catch (const std::exception& e) {
    return make_error(EIO, std::string(what) + ": internal error: " + e.what());
  } catch (...) {
    return make_error(EIO, std::string(what) + ": internal error (an exception of unknown type)");
  }
}

// Runs an exported call's body; an exception becomes an error value.
template <class Body>
val guard(const char* what, Body&& body) {
  try {
    return body();
  } catch (...) {
    return error_value(exception_error(what));
  }
}

// The same for the factories, whose body returns Result<unique_ptr<T>>: an
// error or an exception becomes g_last_error, and JS gets null.
template <class T, class Body>
std::unique_ptr<T> guard_new(const char* what, Body&& body) {
  try {
    Result<std::unique_ptr<T>> made = body();
    if (made.ok()) return std::move(made).value();
    g_last_error = std::move(made).error();
  } catch (...) {
    g_last_error = exception_error(what);
  }
  return nullptr;
}

// Test-only: throws what the tests ask for from inside a guarded call, to
// show the guard holds (a real allocation past the memory cap for
// "bad_alloc"). Not part of the documented API.
val test_throw(std::string kind, double bytes) {
  return guard("testThrow", [&]() -> val {
    if (kind == "bad_alloc") {
      std::vector<uint8_t> huge(static_cast<size_t>(bytes));
      huge[huge.size() / 2] = 1;  // used, so it is not optimised away
      return ok_value(val(static_cast<double>(huge.size())));
    }
    if (kind == "length_error") {
      std::vector<uint64_t> v;
      v.reserve(v.max_size() + 1);
    }
    if (kind == "runtime_error") throw std::runtime_error("thrown on purpose");
    if (kind == "int") throw 42;
    return ok_value(val(0));
  });
}

val last_error() {
  return guard("lastError", [] { return error_value(g_last_error); });
}

// Emscripten numbers errno values its own way; JS learns them from here.
// (Unguarded: it allocates nothing on the C++ side.)
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
  t.set("EPERM", EPERM);
  t.set("ELOOP", ELOOP);
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

// What qemu-img info says of a formats.hpp format: cluster size and its
// "Format specific information" (type, then fields in qemu-img's order).
void facts_info(const ImageFormatFacts& facts, val info) {
  if (facts.cluster_size) info.set("clusterSize", num(*facts.cluster_size));
  if (facts.specific_type.empty()) return;
  val specific = val::object();
  specific.set("type", facts.specific_type);
  val data = val::object();
  val order = val::array();
  for (const auto& [key, value] : facts.specific) {
    if (const auto* text = std::get_if<std::string>(&value))
      data.set(key, *text);
    else
      data.set(key, num(std::get<uint64_t>(value)));
    order.call<void>("push", key);
  }
  specific.set("data", data);
  specific.set("order", order);
  info.set("formatSpecific", specific);
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

// A JS value that must be a string (or absent: `fallback`).
Result<std::string> string_field(const val& object, const char* key, const std::string& fallback) {
  val v = object[key];
  if (v.isUndefined() || v.isNull()) return fallback;
  if (!v.isString()) return make_error(EINVAL, std::string(key) + " must be a string");
  return v.as<std::string>();
}

// A JS value that must be a whole number from 0 to 2^53 (or absent: `fallback`).
Result<uint64_t> number_field(const val& object, const char* key, uint64_t fallback) {
  val v = object[key];
  if (v.isUndefined() || v.isNull()) return fallback;
  if (!v.isNumber()) return make_error(EINVAL, std::string(key) + " must be a number");
  return to_u64(v.as<double>(), key);
}

// An open request for `format` ("auto" or "": by content; otherwise a name
// the core knows) and `snapshot`.
Result<OpenRequest> base_request(const std::string& format, std::string snapshot) {
  OpenRequest request;
  request.snapshot = std::move(snapshot);
  if (format == "auto" || format.empty()) return request;
  if (format == "qcow2" || format == "raw" || find_image_format(format)) {
    request.format = format;
    return request;
  }
  std::string names = "auto, qcow2, raw";
  for (const auto& n : image_format_names()) names += ", " + n;
  return make_error(EINVAL, "unknown format '" + format + "' (use " + names + ")");
}

class WasmConverter {
 public:
  explicit WasmConverter(std::unique_ptr<Converter> c) : converter_(std::move(c)) {}

  val step(double budget) {
    return guard("convert", [&]() -> val {
      auto bytes = to_u64(budget, "step budget");
      if (!bytes.ok()) return error_value(bytes.error());
      auto r = converter_->step(*bytes);
      if (!r.ok()) return error_value(r.error());
      val v = val::object();
      v.set("done", num(r->done));
      v.set("total", num(r->total));
      v.set("finished", r->finished);
      return ok_value(v);
    });
  }

  val close() {
    return guard("convert", [&]() -> val {
      Status st = converter_->close();
      return st.ok() ? ok_value(val::undefined()) : error_value(st.error());
    });
  }

 private:
  std::unique_ptr<Converter> converter_;
};

class WasmImage {
 public:
  // The image `name` among `files` (an array of {name, id}: the JS devices
  // the page registered, by file name), opened through the core's image
  // opener: format by content unless `format` names one, a backing file
  // only from `files`. `snapshot` (an ID or name; empty: the current
  // state) opens a qcow2 image's internal snapshot, read-only.
  static std::unique_ptr<WasmImage> openNamed(val files, std::string name, std::string format,
                                              std::string snapshot) {
    return guard_new<WasmImage>("open", [&]() -> Result<std::unique_ptr<WasmImage>> {
      QK_ASSIGN_OR_RETURN(OpenRequest request, base_request(format, std::move(snapshot)));
      BrowserHost host;
      const unsigned count = files["length"].as<unsigned>();
      for (unsigned i = 0; i < count; ++i) {
        val f = files[i];
        QK_TRY(host.add(f["name"].as<std::string>(), f["id"].as<int>()));
      }
      QK_ASSIGN_OR_RETURN(auto session, ImageSession::open_named(host, name, request));
      return std::make_unique<WasmImage>(std::move(session));
    });
  }

  // A qcow2 (or raw) image over a backing layer the caller chose: another
  // opened image (`backing`, e.g. a qcow2 base) or a plain JS device read as
  // raw (`backing_id`), whatever name the image gives its backing file.
  static std::unique_ptr<WasmImage> open(int device_id, std::string format, WasmImage* backing,
                                         int backing_id, std::string snapshot) {
    return guard_new<WasmImage>("open", [&]() -> Result<std::unique_ptr<WasmImage>> {
      QK_ASSIGN_OR_RETURN(OpenRequest request, base_request(format, std::move(snapshot)));
      if (backing) {
        request.backing = backing->session_->layer();
      } else if (backing_id >= 0) {
        auto below = JsDevice::attach(backing_id);
        if (!below.ok()) return with_context(std::move(below).error(), "backing file");
        request.backing = raw_layer(*below);
      }
      QK_ASSIGN_OR_RETURN(auto file, JsDevice::attach(device_id));
      QK_ASSIGN_OR_RETURN(auto session, ImageSession::open(file, request));
      return std::make_unique<WasmImage>(std::move(session));
    });
  }

  explicit WasmImage(std::unique_ptr<ImageSession> s) : session_(std::move(s)) {}

  val info() {
    return guard("info", [&]() -> val {
      val v = val::object();
      v.set("format", session_->format());
      v.set("virtualSize", num(session_->virtual_size()));
      v.set("fileSize", num(session_->file().info().size));
      if (Qcow2Image* q = session_->qcow2()) qcow2_info(*q, v);
      auto facts = session_->facts();
      if (!facts.ok()) return error_value(facts.error());
      if (*facts) facts_info(**facts, v);
      return ok_value(v);
    });
  }

  val map(double offset, double length) {
    return guard("map", [&]() -> val {
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
    });
  }

  val mapSummary(int bins) {
    return guard("map", [&]() -> val {
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
    });
  }

  val check() {
    return guard("check", [&]() -> val {
      auto report = session_->check();
      if (!report.ok()) return error_value(report.error());
      return ok_value(check_value(*report));
    });
  }

  val read(double offset, double length) {
    return guard("read", [&]() -> val {
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
    });
  }

  // options: {to, compress, clusterSize, formatOptions: {key: string},
  // fileName, sizeAlignment, partStart, partEnd, stream} (partStart absent:
  // the whole image; otherwise only [partStart, partEnd); stream: qcow2
  // written front to back onto a destination that takes appends only).
  std::unique_ptr<WasmConverter> startConvert(int sink_id, val options) {
    return guard_new<WasmConverter>("convert", [&]() -> Result<std::unique_ptr<WasmConverter>> {
      ConvertOptions o;
      QK_ASSIGN_OR_RETURN(o.to, string_field(options, "to", "raw"));
      o.compress = options["compress"].isTrue();
      o.stream = options["stream"].isTrue();
      QK_ASSIGN_OR_RETURN(uint64_t cluster, number_field(options, "clusterSize", 0));
      if (cluster > (64u << 20)) return make_error(EINVAL, "clusterSize is too large");
      if (cluster) o.cluster_size = static_cast<uint32_t>(cluster);
      QK_ASSIGN_OR_RETURN(o.file_name, string_field(options, "fileName", ""));
      QK_ASSIGN_OR_RETURN(o.size_alignment, number_field(options, "sizeAlignment", 0));
      val fo = options["formatOptions"];
      if (!fo.isUndefined() && !fo.isNull()) {
        val keys = val::global("Object").call<val>("keys", fo);
        const unsigned n = keys["length"].as<unsigned>();
        for (unsigned i = 0; i < n; ++i) {
          const std::string key = keys[i].as<std::string>();
          auto value = string_field(fo, key.c_str(), "");
          if (!value.ok()) return make_error(EINVAL, "formatOptions." + value.error().message);
          o.format_options[key] = *value;
        }
      }
      if (!options["partStart"].isUndefined()) {
        o.part = true;
        QK_ASSIGN_OR_RETURN(o.part_start, number_field(options, "partStart", 0));
        QK_ASSIGN_OR_RETURN(o.part_end, number_field(options, "partEnd", 0));
      }
      auto sink = JsDevice::attach(sink_id);
      if (!sink.ok()) return with_context(std::move(sink).error(), "convert destination");
      QK_ASSIGN_OR_RETURN(auto converter, Converter::start(*session_, *sink, o));
      return std::make_unique<WasmConverter>(std::move(converter));
    });
  }

  val close() {
    return guard("close", [&]() -> val {
      Status st = session_->close();
      return st.ok() ? ok_value(val::undefined()) : error_value(st.error());
    });
  }

 private:
  std::unique_ptr<ImageSession> session_;
};

// The formats a conversion can write, and those an image can be read from,
// for the JS API and the page's texts.
val format_names() {
  return guard("formats", []() -> val {
    val out = val::array();
    out.call<void>("push", std::string("qcow2"));
    out.call<void>("push", std::string("raw"));
    for (const auto& n : image_format_names()) out.call<void>("push", n);
    return ok_value(out);
  });
}

}  // namespace
}  // namespace qcowkit::wasm

EMSCRIPTEN_BINDINGS(qcowkit) {
  using namespace qcowkit::wasm;
  emscripten::function("lastError", &last_error);
  emscripten::function("errnoTable", &errno_table);
  emscripten::function("formatNames", &format_names);
  emscripten::function("testThrow", &test_throw);
  emscripten::class_<WasmConverter>("WasmConverter")
      .function("step", &WasmConverter::step)
      .function("close", &WasmConverter::close);
  emscripten::class_<WasmImage>("WasmImage")
      .class_function("open", &WasmImage::open, emscripten::allow_raw_pointers())
      .class_function("openNamed", &WasmImage::openNamed)
      .function("info", &WasmImage::info)
      .function("map", &WasmImage::map)
      .function("mapSummary", &WasmImage::mapSummary)
      .function("check", &WasmImage::check)
      .function("read", &WasmImage::read)
      .function("startConvert", &WasmImage::startConvert)
      .function("close", &WasmImage::close);
}
