// qcowkit info: what an image is, as `qemu-img info` describes it. Reads only
// the header (Qcow2Image::probe), so it also describes dirty or corrupt images.
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>

#include "cli_common.hpp"
#include "qcowkit/formats.hpp"
#include "human_format.hpp"
#include "image_open.hpp"
#include "json_writer.hpp"
#include "qcowkit/image_lock.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "snapshot_list.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit info [-f FORMAT] [--output=human|json] [--backing-chain] [-U] IMAGE\n"
    "\n"
    "Prints the virtual size, file size, format and, for qcow2, the version,\n"
    "cluster size, refcount width, feature bits, backing file, snapshots and\n"
    "bitmaps. FORMAT: raw, qcow2, vpc, vdi, vmdk, vhdx, qcow (found by content unless\n"
    "given).\n"
    "JSON output uses qemu-img's field names. Only headers are read.\n"
    "Backing files are named, not described, unless --backing-chain asks for\n"
    "every layer (JSON: an array, as qemu-img prints it). Each file is read\n"
    "under a shared reader lock, as qemu-img takes it, so an image a VM or\n"
    "server is writing is refused; -U (--force-share) reads without the lock.\n";

struct ImageFacts {
  std::string filename, format;
  uint64_t virtual_size = 0, actual_size = 0;
  std::optional<Qcow2Details> qcow2;
  std::optional<ImageFormatFacts> other;  // vpc, vdi, ...
};


void write_json(JsonWriter& json, const ImageFacts& facts) {
  json.begin_object();
  const Qcow2Details* d = facts.qcow2 ? &*facts.qcow2 : nullptr;
  if (d && !d->snapshots.empty()) {
    json.key("snapshots").begin_array();
    for (const auto& s : d->snapshots) {
      json.begin_object();
      if (s.icount != UINT64_MAX) json.field("icount", s.icount);
      json.field("vm-clock-nsec", s.vm_clock_nsec % 1000000000)
          .field("name", s.name)
          .field("date-sec", uint64_t{s.date_sec})
          .field("date-nsec", uint64_t{s.date_nsec})
          .field("vm-clock-sec", s.vm_clock_nsec / 1000000000)
          .field("id", s.id)
          .field("vm-state-size", s.vm_state_size);
      json.end_object();
    }
    json.end_array();
  }
  if (d && !d->backing_format.empty()) json.field("backing-filename-format", d->backing_format);
  json.field("virtual-size", facts.virtual_size).field("filename", facts.filename);
  if (d) json.field("cluster-size", uint64_t{d->cluster_size});
  if (facts.other && facts.other->cluster_size) json.field("cluster-size", *facts.other->cluster_size);
  json.field("format", facts.format).field("actual-size", facts.actual_size);
  if (facts.other && !facts.other->specific_type.empty()) {
    json.key("format-specific").begin_object().field("type", facts.other->specific_type);
    json.key("data").begin_object();
    for (const auto& [key, value] : facts.other->specific) {
      if (const auto* number = std::get_if<uint64_t>(&value))
        json.field(key, *number);
      else
        json.field(key, std::get<std::string>(value));
    }
    json.end_object().end_object();
  }
  if (d) {
    json.key("format-specific").begin_object().field("type", "qcow2");
    json.key("data").begin_object();
    json.field("compat", qcow2_compat_name(d->version))
        .field("compression-type", to_string(d->compression_type));
    if (d->version >= 3) json.field("lazy-refcounts", d->lazy_refcounts);
    if (!d->bitmaps.empty()) {
      json.key("bitmaps").begin_array();
      for (const auto& b : d->bitmaps) {
        json.begin_object().key("flags").begin_array();
        for (const auto& flag : qcow2_bitmap_flag_names(b.flags)) json.value(flag);
        json.end_array();
        json.field("name", b.name).field("granularity", uint64_t{1} << b.granularity_bits);
        json.end_object();
      }
      json.end_array();
    }
    json.field("refcount-bits", d->refcount_bits);
    if (!d->data_file.empty()) json.field("data-file", d->data_file);
    if (d->data_file_raw) json.field("data-file-raw", true);
    if (d->version >= 3)
      json.field("corrupt", d->corrupt).field("extended-l2", d->extended_l2);
    json.end_object().end_object();
    if (!d->backing_file.empty())
      json.field("full-backing-filename", d->backing_file)
          .field("backing-filename", d->backing_file);
  }
  // A differencing VHD's parent (qemu-img 7.2 does not read these; the
  // keys are qcow2's).
  if (facts.other && !facts.other->backing_file.empty()) {
    auto actual = resolve_backing_name(facts.filename, facts.other->backing_file);
    json.field("full-backing-filename", actual.ok() ? *actual : facts.other->backing_file)
        .field("backing-filename", facts.other->backing_file);
  }
  json.field("dirty-flag", d ? d->dirty : false);
  json.end_object();
}

void write_human(const ImageFacts& facts) {
  std::printf("image: %s\n", facts.filename.c_str());
  std::printf("file format: %s\n", facts.format.c_str());
  std::printf("virtual size: %s (%" PRIu64 " bytes)\n", human_size(facts.virtual_size).c_str(),
              facts.virtual_size);
  std::printf("disk size: %s\n", human_size(facts.actual_size).c_str());
  if (facts.other && facts.other->cluster_size)
    std::printf("cluster_size: %" PRIu64 "\n", *facts.other->cluster_size);
  if (facts.other && !facts.other->backing_file.empty()) {
    const std::string& name = facts.other->backing_file;
    auto actual = resolve_backing_name(facts.filename, name);
    if (actual.ok() && *actual != name)
      std::printf("backing file: %s (actual path: %s)\n", name.c_str(), actual->c_str());
    else
      std::printf("backing file: %s\n", name.c_str());
  }
  if (facts.other && !facts.other->specific.empty()) {
    // qemu-img's spelling: "parent-cid" is "parent cid" here.
    std::printf("Format specific information:\n");
    for (const auto& [key, value] : facts.other->specific) {
      std::string label = key;
      for (char& c : label) if (c == '-') c = ' ';
      if (const auto* number = std::get_if<uint64_t>(&value))
        std::printf("    %s: %" PRIu64 "\n", label.c_str(), *number);
      else
        std::printf("    %s: %s\n", label.c_str(), std::get<std::string>(value).c_str());
    }
  }
  if (!facts.qcow2) return;
  const Qcow2Details& d = *facts.qcow2;
  std::printf("cluster_size: %u\n", d.cluster_size);
  if (!d.backing_file.empty()) {
    // Named only: the file is not opened, but where it would be is useful.
    auto actual = resolve_backing_name(facts.filename, d.backing_file);
    if (actual.ok() && *actual != d.backing_file)
      std::printf("backing file: %s (actual path: %s)\n", d.backing_file.c_str(), actual->c_str());
    else
      std::printf("backing file: %s\n", d.backing_file.c_str());
  }
  if (!d.backing_format.empty())
    std::printf("backing file format: %s\n", d.backing_format.c_str());
  if (!d.snapshots.empty()) print_snapshot_list(d.snapshots);
  std::printf("Format specific information:\n");
  std::printf("    compat: %s\n", qcow2_compat_name(d.version));
  std::printf("    compression type: %s\n", to_string(d.compression_type));
  if (d.version >= 3) std::printf("    lazy refcounts: %s\n", d.lazy_refcounts ? "true" : "false");
  if (!d.bitmaps.empty()) {
    std::printf("    bitmaps:\n");
    for (size_t i = 0; i < d.bitmaps.size(); ++i) {
      const auto& b = d.bitmaps[i];
      std::printf("        [%zu]:\n            flags:\n", i);
      auto flags = qcow2_bitmap_flag_names(b.flags);
      for (size_t k = 0; k < flags.size(); ++k)
        std::printf("                [%zu]: %s\n", k, flags[k].c_str());
      std::printf("            name: %s\n            granularity: %" PRIu64 "\n", b.name.c_str(),
                  uint64_t{1} << b.granularity_bits);
    }
  }
  std::printf("    refcount bits: %u\n", d.refcount_bits);
  if (!d.data_file.empty()) std::printf("    data file: %s\n", d.data_file.c_str());
  if (d.version >= 3) {
    std::printf("    corrupt: %s\n", d.corrupt ? "true" : "false");
    std::printf("    extended l2: %s\n", d.extended_l2 ? "true" : "false");
  }
  if (d.dirty) std::printf("dirty flag: true\n");
}


Result<ImageFacts> gather_facts(const std::string& path, const std::optional<std::string>& format,
                                bool lock) {
  ImageFacts facts;
  facts.filename = path;
  auto file = FileDevice::open(path, {.read_only = true});
  if (!file.ok()) return with_context(std::move(file).error(), "cannot open '" + path + "'");
  // The reader lock, as qemu-img info takes it: a writer's metadata may be
  // in flux, so while a VM or server writes the image we refuse (-U: read
  // anyway). The lock goes when the file is closed at the end of this call.
  if (lock) QK_TRY(lock_image((*file)->fd(), path, ImageLockMode::reader));
  if (format) {
    facts.format = *format;
  } else {
    auto detected = detect_format(**file);
    if (!detected.ok()) return with_context(detected.error(), path);
    facts.format = *detected;
  }
  facts.virtual_size = (*file)->info().size;
  struct stat st;
  if (fstat((*file)->fd(), &st) == 0) facts.actual_size = uint64_t(st.st_blocks) * 512;
  if (facts.format == "qcow2") {
    auto details = Qcow2Image::probe(**file);
    if (!details.ok()) return with_context(details.error(), path);
    facts.virtual_size = details->virtual_size;
    facts.qcow2 = std::move(details).value();
  } else if (const ImageFormat* other = find_image_format(facts.format)) {
    // A vmdk descriptor's extents: next to it only, as the verbs read them.
    auto probed = probe_image_file(posix_host(), path, **file, *other,
                                   BackingPolicy::same_directory, lock);
    if (!probed.ok()) return with_context(probed.error(), path);
    facts.virtual_size = probed->virtual_size;
    facts.other = std::move(probed).value();
  }
  return facts;
}

// The image and, with --backing-chain, every backing file under it.
Result<std::vector<ImageFacts>> gather_chain(const std::string& path,
                                             std::optional<std::string> format, bool chain,
                                             bool lock) {
  constexpr size_t kMaxDepth = 16;
  std::vector<ImageFacts> layers;
  std::string next = path;
  for (;;) {
    QK_ASSIGN_OR_RETURN(ImageFacts facts, gather_facts(next, format, lock));
    layers.push_back(std::move(facts));
    const ImageFacts& top = layers.back();
    if (!chain || !top.qcow2 || top.qcow2->backing_file.empty()) return layers;
    if (layers.size() >= kMaxDepth)
      return make_error(ELOOP, path + ": backing chain longer than " + std::to_string(kMaxDepth));
    QK_ASSIGN_OR_RETURN(next, resolve_backing_name(top.filename, top.qcow2->backing_file));
    format.reset();
    if (!top.qcow2->backing_format.empty()) {
      QK_ASSIGN_OR_RETURN(std::string name, parse_format_name(top.qcow2->backing_format));
      format = name;
    }
  }
}

}  // namespace

int run_info(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("info", kHelp, raw_args,
                              {output_option(), {'f', nullptr, true}, {0, "backing-chain", false}},
                              status);
  if (!args) return status;
  auto format = output_format(*args);
  if (!format.ok()) return usage_error("info", format.error().message);
  if (args->positionals.size() != 1) return usage_error("info", "expected exactly one IMAGE");
  std::optional<std::string> image_format;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("info", name.error().message);
    image_format = *name;
  }
  const bool chain = args->has("backing-chain");
  auto layers = gather_chain(args->positionals[0], image_format, chain, !args->has("force-share"));
  if (!layers.ok()) return report_error("info", layers.error());
  if (*format == OutputFormat::json) {
    // qemu-img prints an array with --backing-chain, one object without.
    JsonWriter json;
    if (chain) json.begin_array();
    for (const auto& facts : *layers) write_json(json, facts);
    if (chain) json.end_array();
    std::printf("%s\n", json.str().c_str());
  } else {
    for (size_t i = 0; i < layers->size(); ++i) {
      if (i > 0) std::printf("\n");
      write_human((*layers)[i]);
    }
  }
  return 0;
}

}  // namespace qcowkit::cli
