// qcowkit map: the guest address space as runs, in the shape of
// `qemu-img map` (human: data runs with their file offsets; json: every run).
#include <cinttypes>
#include <cstdio>

#include "cli_common.hpp"
#include "human_format.hpp"
#include "image_open.hpp"
#include "json_writer.hpp"
#include "qcowkit/image_map.hpp"
#include "qcowkit/option_values.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit map [-f FORMAT] [-U] [--output=human|json] [--backing-chain]\n"
    "                   [--start-offset=OFFSET] [--max-length=LENGTH] IMAGE\n"
    "\n"
    "Lists the runs of the virtual disk: where data lies in the file, what\n"
    "reads as zeroes, what is compressed. JSON rows carry qemu-img's fields\n"
    "(start, length, depth, present, zero, data, compressed, offset).\n"
    "--backing-chain opens the backing files too (depth counts the layers).\n"
    "-U (--force-share) reads without taking the image's lock.\n"
    "--bitmap NAME lists instead what the persistent bitmap NAME marks dirty:\n"
    "rows of start, length and dirty (true or false), for incremental backups.\n";

void write_json(const std::vector<MapRun>& rows) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const MapRun& r = rows[i];
    JsonWriter row(false);
    row.begin_object()
        .field("start", r.start)
        .field("length", r.length)
        .field("depth", r.depth)
        .field("present", r.present)
        .field("zero", r.zero)
        .field("data", r.data)
        .field("compressed", r.compressed);
    if (r.offset) row.field("offset", *r.offset);
    row.end_object();
    // qemu-img writes "{ " and " }" inside the braces of each row.
    std::string text = row.str();
    out += "{ " + text.substr(1, text.size() - 2) + "}";
    out += i + 1 < rows.size() ? ",\n" : "";
  }
  out += "]";
  std::printf("%s\n", out.c_str());
}

void write_human(const std::vector<MapRun>& rows) {
  std::printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
  for (const auto& r : rows) {
    // As qemu-img: only runs of data the file holds (not holes inside it).
    // Compressed runs have no offset to show (qemu-img stops with an error).
    if (!r.data || r.zero || !r.offset) continue;
    std::printf("%-16s%-16s%-16s%s\n", hex(r.start).c_str(), hex(r.length).c_str(),
                hex(*r.offset).c_str(), r.layer->path.c_str());
  }
}

// A bitmap's runs clipped to [from, to): JSON rows as map prints them, or a
// human table.
void write_bitmap_rows(const std::vector<Extent>& ranges, uint64_t from, uint64_t to, bool json) {
  std::string out = json ? "[" : "";
  if (!json) std::printf("%-16s %-16s %s\n", "Offset", "Length", "Dirty");
  for (const Extent& e : ranges) {
    const uint64_t a = std::max(e.offset, from), b = std::min(e.offset + e.length, to);
    if (a >= b) continue;
    const bool dirty = e.kind == ExtentKind::data;
    if (!json) {
      std::printf("0x%-14" PRIx64 " 0x%-14" PRIx64 " %s\n", a, b - a, dirty ? "yes" : "no");
      continue;
    }
    JsonWriter row(false);
    row.begin_object().field("start", a).field("length", b - a).field("dirty", dirty).end_object();
    const std::string text = row.str();
    out += (out.size() > 1 ? ",\n{ " : "{ ") + text.substr(1, text.size() - 2) + "}";
  }
  if (json) std::printf("%s]\n", out.c_str());
}

}  // namespace

int run_map(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("map", kHelp, raw_args,
                              {output_option(), {'f', nullptr, true}, {0, "backing-chain", false},
                               {0, "start-offset", true}, {0, "max-length", true}, {'U', "force-share", false},
                               {0, "bitmap", true}},
                              status);
  if (!args) return status;
  auto format = output_format(*args);
  if (!format.ok()) return usage_error("map", format.error().message);
  if (args->positionals.size() != 1) return usage_error("map", "expected exactly one IMAGE");
  ImageOpenOptions open_options;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("map", name.error().message);
    open_options.format = *name;
  }
  open_options.follow_backing = args->has("backing-chain");
  open_options.lock = !args->has("force-share");
  const std::string& path = args->positionals[0];
  auto image = open_image(path, open_options);
  if (!image.ok()) return report_error("map", image.error());

  const uint64_t size = image->device->info().size;
  uint64_t start = 0, length = size;
  if (auto v = args->last("start-offset")) {
    auto n = parse_size(*v);
    if (!n.ok()) return usage_error("map", n.error().message);
    start = std::min(*n, size);
    length = size - start;
  }
  if (auto v = args->last("max-length")) {
    auto n = parse_size(*v);
    if (!n.ok()) return usage_error("map", n.error().message);
    length = std::min(*n, length);
  }
  if (auto bitmap = args->last("bitmap")) {
    if (!image->qcow2) return report_error("map", make_error(ENOTSUP, path + ": raw images have no bitmaps"));
    auto ranges = image->qcow2->bitmap_ranges(*bitmap);
    if (!ranges.ok()) return report_error("map", with_context(ranges.error(), path));
    write_bitmap_rows(*ranges, start, start + length, *format == OutputFormat::json);
    return 0;
  }
  auto rows = map_image(*image, start, length);
  if (!rows.ok()) return report_error("map", with_context(rows.error(), path));
  if (*format == OutputFormat::json)
    write_json(*rows);
  else
    write_human(*rows);
  return 0;
}

}  // namespace qcowkit::cli
