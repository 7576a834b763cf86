// qcowkit measure: how large a new image would be, as `qemu-img measure`
// says (same numbers, output and JSON). The arithmetic lives in core.
#include <cinttypes>
#include <cstdio>

#include "cli_common.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "image_open.hpp"
#include "json_writer.hpp"
#include "qcowkit/measure.hpp"
#include "qcowkit/option_values.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit measure [--output=human|json] [-O raw|qcow2] [-o OPTIONS]\n"
    "                       [-U] (--size SIZE | [-f raw|qcow2] [--backing-chain] IMAGE)\n"
    "\n"
    "Prints the file size a new image needs: \"required\" for the data IMAGE\n"
    "holds (or for an empty image of SIZE), \"fully allocated\" if every byte\n"
    "were written, and for qcow2 to qcow2 the size its bitmaps would take.\n"
    "-O is the output format (default raw); -o takes create's qcow2 options\n"
    "(cluster_size, refcount_bits, extended_l2, ...).\n";

}  // namespace

int run_measure(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("measure", kHelp, raw_args,
                              {output_option(), {'O', nullptr, true}, {'o', nullptr, true},
                               {'f', nullptr, true}, {0, "size", true}, {0, "backing-chain", false},
                               {'U', "force-share", false}},
                              status);
  if (!args) return status;
  auto output = output_format(*args);
  if (!output.ok()) return usage_error("measure", output.error().message);
  std::string out_format = "raw";
  if (auto o = args->last("O")) {
    auto name = parse_format_name(*o);
    if (!name.ok()) return usage_error("measure", name.error().message);
    out_format = *name;
  }
  const bool by_size = args->has("size");
  if (by_size == (args->positionals.size() == 1) || args->positionals.size() > 1)
    return usage_error("measure", "give either --size SIZE or one IMAGE");
  auto kv = parse_key_values(args->all("o"));
  if (!kv.ok()) return usage_error("measure", kv.error().message);
  if (out_format == "raw" && !kv->empty()) return usage_error("measure", "raw output takes no -o options");

  std::optional<OpenedImage> source;
  uint64_t size = 0;
  if (by_size) {
    auto parsed = parse_size(*args->last("size"));
    if (!parsed.ok()) return usage_error("measure", parsed.error().message);
    size = *parsed;
  } else {
    ImageOpenOptions options;
    options.follow_backing = args->has("backing-chain");
    options.contents_needed = true;
    options.lock = !args->has("force-share");
    if (auto f = args->last("f")) {
      auto name = parse_format_name(*f);
      if (!name.ok()) return usage_error("measure", name.error().message);
      options.format = *name;
    }
    auto opened = open_image(args->positionals[0], options);
    if (!opened.ok()) return report_error("measure", opened.error());
    source = std::move(opened).value();
    size = source->device->info().size;
  }

  Result<MeasureResult> measured = make_error(EINVAL, "unset");
  if (out_format == "raw") {
    measured = measure_raw(source ? source->device.get() : nullptr, size);
  } else {
    Qcow2CreateOptions layout;
    layout.size = size;
    if (auto applied = apply_qcow2_create_options(*kv, layout); !applied.ok())
      return usage_error("measure", applied.error().message);
    layout.size = size;
    measured = measure_qcow2(source ? source->device.get() : nullptr,
                             source ? source->qcow2.get() : nullptr, layout);
  }
  if (source) (void)source->close();
  if (!measured.ok()) return report_error("measure", measured.error());
  if (*output == OutputFormat::json) {
    JsonWriter json;
    json.begin_object();
    if (measured->bitmaps) json.field("bitmaps", *measured->bitmaps);
    json.field("required", measured->required).field("fully-allocated", measured->fully_allocated);
    json.end_object();
    std::printf("%s\n", json.str().c_str());
  } else {
    std::printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", measured->required,
                measured->fully_allocated);
    if (measured->bitmaps) std::printf("bitmaps size: %" PRIu64 "\n", *measured->bitmaps);
  }
  return 0;
}

}  // namespace qcowkit::cli
