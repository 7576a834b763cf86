// qcowkit check: qemu-img check's report and exit codes over
// Qcow2Image::check (0 clean, 1 could not check, 2 corruptions, 3 leaks only)
// and, for the other formats, the format table's check (vdi, vmdk), through
// the image opener's check_named_image; formats without one (vpc, raw) get
// qemu-img's "does not support checks" and exit 63.
#include <cinttypes>
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "cli_common.hpp"
#include "human_format.hpp"
#include "image_open.hpp"
#include "json_writer.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit check [-f FORMAT] [-r leaks|all] [-U] [--output=human|json] IMAGE\n"
    "\n"
    "Checks a qcow2 image's refcounts against its references. -r leaks frees\n"
    "leaked clusters; -r all also repairs corruptions (the image is opened\n"
    "read-write). Exit status: 0 no problems left, 1 the check itself failed,\n"
    "2 corruptions left, 3 only leaks left (as qemu-img check).\n"
    "vdi and vmdk images get qemu-img's checks for them (block map entries,\n"
    "grains past the end of the file; no repairs); other formats (vpc, raw)\n"
    "have none: exit 63, as qemu-img. A vmdk descriptor's extent files are\n"
    "read from the descriptor's own folder only.\n"
    "-U (--force-share) reads the image without taking its lock (a check\n"
    "of an image in use may then report errors that are not there).\n";

constexpr int kExitCheckFailed = 1;
constexpr int kExitCorruptions = 2;
constexpr int kExitLeaks = 3;
constexpr int kExitNotSupported = 63;  // qemu-img's, for a format without checks

void write_json(const std::string& filename, const CheckReport& r) {
  JsonWriter json;
  json.begin_object()
      .field("image-end-offset", r.image_end_offset)
      .field("total-clusters", r.total_clusters)
      .field("check-errors", r.check_errors)
      .field("leaks", r.leaks)
      .field("leaks-fixed", r.leaks_fixed)
      .field("corruptions", r.corruptions)
      .field("corruptions-fixed", r.corruptions_fixed)
      .field("allocated-clusters", r.allocated_clusters)
      .field("fragmented-clusters", r.fragmented_clusters)
      .field("compressed-clusters", r.compressed_clusters)
      .field("filename", filename)
      .field("format", "qcow2")
      .end_object();
  std::printf("%s\n", json.str().c_str());
}

void write_human(const CheckReport& r, bool end_offset = true) {
  if (r.leaks_fixed || r.corruptions_fixed)
    std::printf("The following inconsistencies were found and repaired:\n\n"
                "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
                "Double checking the fixed image now...\n",
                r.leaks_fixed, r.corruptions_fixed);
  uint64_t corruptions = r.corruptions, leaks = r.leaks;
  if (corruptions == 0 && leaks == 0 && r.check_errors == 0) {
    std::printf("No errors were found on the image.\n");
  } else {
    if (corruptions)
      std::printf("\n%" PRIu64 " errors were found on the image.\n"
                  "Data may be corrupted, or further writes to the image may corrupt it.\n",
                  corruptions);
    if (leaks)
      std::printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
                  "This means waste of disk space, but no harm to data.\n",
                  leaks);
    if (r.check_errors)
      std::printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
                  r.check_errors);
  }
  if (r.total_clusters)
    std::printf("%" PRIu64 "/%" PRIu64 " = %s%% allocated, %s%% fragmented, %s%% compressed "
                "clusters\n",
                r.allocated_clusters, r.total_clusters,
                percent(r.allocated_clusters, r.total_clusters).c_str(),
                percent(r.fragmented_clusters, r.allocated_clusters).c_str(),
                percent(r.compressed_clusters, r.allocated_clusters).c_str());
  if (end_offset) std::printf("Image end offset: %" PRIu64 "\n", r.image_end_offset);
}

// qemu-img's JSON for formats other than qcow2: the counts only when
// non-zero, check-errors always.
void write_other_json(const std::string& filename, const std::string& format,
                      const FormatCheckReport& r) {
  JsonWriter json;
  json.begin_object();
  if (r.image_end_offset) json.field("image-end-offset", *r.image_end_offset);
  if (r.total_clusters) json.field("total-clusters", *r.total_clusters);
  if (r.corruptions) json.field("corruptions", r.corruptions);
  json.field("check-errors", r.check_errors);
  if (r.allocated_clusters) json.field("allocated-clusters", *r.allocated_clusters);
  json.field("filename", filename).field("format", format).end_object();
  std::printf("%s\n", json.str().c_str());
}

// The format the image opener would give `path` (-f, else by content).
Result<std::string> format_of(const std::string& path, const ImageOpenOptions& options) {
  if (options.format) return *options.format;
  QK_ASSIGN_OR_RETURN(auto file, posix_host().open_file(path, HostOpenOptions{false, options.lock}));
  auto detected = detect_format(*file);
  (void)file->close();
  if (!detected.ok()) return with_context(detected.error(), path);
  return detected;
}

// Every format but qcow2: the format table's check, reported as qemu-img
// reports it.
int check_other(const std::string& path, const std::string& format, const ImageOpenOptions& options,
                RepairMode repair, OutputFormat output) {
  const ImageFormat* entry = find_image_format(format);
  // qemu-img has no repairs for these formats either: its check returns
  // "not supported" when asked to fix.
  if (!entry || !entry->check || repair != RepairMode::none)
    return report_error("check", make_error(ENOTSUP, "This image format does not support checks"),
                        kExitNotSupported);
  qcowkit::ImageOpenOptions o;
  o.format = format;
  o.lock = options.lock;
  o.extent_files = BackingPolicy::same_directory;
  auto report = check_named_image(posix_host(), path, o);
  if (!report.ok()) return report_error("check", report.error(), kExitCheckFailed);
  for (const auto& message : report->messages) std::fprintf(stderr, "%s\n", message.c_str());
  if (report->failed_errno)
    return report_error("check",
                        make_error(report->failed_errno,
                                   std::string("Check failed: ") + std::strerror(report->failed_errno)),
                        kExitCheckFailed);
  if (output == OutputFormat::json) {
    write_other_json(path, format, *report);
  } else {
    CheckReport r;
    r.corruptions = report->corruptions;
    r.check_errors = report->check_errors;
    r.image_end_offset = report->image_end_offset.value_or(0);
    r.total_clusters = report->total_clusters.value_or(0);
    r.allocated_clusters = report->allocated_clusters.value_or(0);
    write_human(r, report->image_end_offset.has_value());
  }
  if (report->check_errors) return kExitCheckFailed;
  if (report->corruptions) return kExitCorruptions;
  return 0;
}

Result<CheckReport> check_image(const std::string& path, const ImageOpenOptions& options,
                                RepairMode repair) {
  QK_ASSIGN_OR_RETURN(OpenedImage image, open_image(path, options));
  if (!image.qcow2)
    return make_error(ENOTSUP, path + ": " + image.format + " images are not checked here (qcow2 images are)");
  auto report = image.qcow2->check(repair);
  if (!report.ok()) return with_context(report.error(), path);
  auto closed = image.qcow2->close();
  if (!closed.ok()) return with_context(closed.error(), path);
  return report;
}

}  // namespace

int run_check(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("check", kHelp, raw_args,
                              {output_option(), {'r', nullptr, true}, {'f', nullptr, true}, {'U', "force-share", false}},
                              status);
  if (!args) return status;
  auto format = output_format(*args);
  if (!format.ok()) return usage_error("check", format.error().message);
  if (args->positionals.size() != 1) return usage_error("check", "expected exactly one IMAGE");
  RepairMode repair = RepairMode::none;
  if (auto mode = args->last("r")) {
    if (*mode == "leaks")
      repair = RepairMode::leaks;
    else if (*mode == "all")
      repair = RepairMode::all;
    else
      return usage_error("check", "-r must be leaks or all, not '" + *mode + "'");
  }
  ImageOpenOptions open_options;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("check", name.error().message);
    open_options.format = *name;
  }
  open_options.read_only = repair == RepairMode::none;
  open_options.lock = !args->has("force-share");
  // As qemu-img: repairs write, and writing needs the image's lock.
  if (!open_options.lock && !open_options.read_only)
    return report_error("check", make_error(EINVAL, "-U (force-share) can only be used with read-only "
                                                    "images; -r needs the image's write lock"));

  const std::string& path = args->positionals[0];
  auto image_format = format_of(path, open_options);
  if (!image_format.ok()) return report_error("check", image_format.error(), kExitCheckFailed);
  if (*image_format != "qcow2") return check_other(path, *image_format, open_options, repair, *format);
  // With -r, a read-only pass first: the engine rebuilds the refcounts of a
  // dirty (lazy refcounts) image as soon as it is opened read-write, so what
  // the repair fixed is what the first pass found and the second does not.
  std::optional<CheckReport> before;
  if (repair != RepairMode::none) {
    ImageOpenOptions read_only = open_options;
    read_only.read_only = true;
    auto found = check_image(path, read_only, RepairMode::none);
    if (!found.ok()) return report_error("check", found.error(), kExitCheckFailed);
    before = std::move(found).value();
  }
  auto report = check_image(path, open_options, repair);
  if (!report.ok()) return report_error("check", report.error(), kExitCheckFailed);
  if (before) {
    auto fixed = [](uint64_t found, uint64_t left, uint64_t reported) {
      return std::max(reported, found > left ? found - left : 0);
    };
    report->leaks_fixed = fixed(before->leaks, report->leaks, report->leaks_fixed);
    report->corruptions_fixed =
        fixed(before->corruptions, report->corruptions, report->corruptions_fixed);
    if (report->messages.empty()) report->messages = before->messages;
  }

  // One line per problem on stderr, whatever the output format (as qemu-img).
  for (const auto& message : report->messages) std::fprintf(stderr, "%s\n", message.c_str());
  if (*format == OutputFormat::json)
    write_json(path, *report);
  else
    write_human(*report);
  if (report->check_errors) return kExitCheckFailed;
  if (report->corruptions) return kExitCorruptions;
  if (report->leaks) return kExitLeaks;
  return 0;
}

}  // namespace qcowkit::cli
