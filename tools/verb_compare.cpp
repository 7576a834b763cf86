// qcowkit compare: qemu-img compare's messages and exit codes (0 identical,
// 1 different, 2 error) over block_ops' compare.
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "prefix_device.hpp"
#include "progress_bar.hpp"
#include "qcowkit/block_ops.hpp"
#include "qcowkit/copy_engine.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit compare [-f FMT] [-F FMT] [-s] [-p] [-U] [--backing-chain] A B\n"
    "\n"
    "Compares the virtual contents of A and B (raw or qcow2; -f and -F name their\n"
    "formats). Without -s, images of different sizes are equal when the larger\n"
    "one holds only zeroes past the end of the smaller; with -s they differ.\n"
    "Exit status: 0 identical, 1 different (the first differing byte offset is\n"
    "printed), 2 an error stopped the comparison. -U (--force-share) reads\n"
    "without taking the images' locks.\n";

constexpr int kExitDifferent = 1;
constexpr int kExitError = 2;

// Finds the first non-zero byte at or after `from` on the copy engine:
// holes are never read, chunks are scanned in parallel, the first find in
// device order stops the walk.
class FirstNonzeroSink : public CopySink {
 public:
  explicit FirstNonzeroSink(uint64_t from) : from_(from) {}
  Status prepare(CopyChunk& chunk) override {
    for (uint64_t i = chunk.offset < from_ ? from_ - chunk.offset : 0; i < chunk.length; ++i) {
      if (chunk.data[i]) {
        chunk.found = chunk.offset + i;
        break;
      }
    }
    return {};
  }
  Result<Flow> commit(CopyChunk& chunk) override {
    if (!chunk.found) return Flow::proceed;
    found = chunk.found;
    return Flow::stop;
  }
  std::optional<uint64_t> found;

 private:
  const uint64_t from_;
};

Result<std::optional<uint64_t>> first_nonzero(BlockDevice& device, uint64_t from) {
  const uint32_t sector = device.info().sector_size ? device.info().sector_size : 1;
  FirstNonzeroSink sink(from);
  CopyEngineOptions options;
  // Extents start at a sector boundary; the bytes before `from` inside the
  // first sector are skipped when scanning.
  options.begin = from / sector * sector;
  options.alignment = sector;
  options.chunk_size = (uint64_t{1} << 20) / sector * sector;
  if (options.chunk_size == 0) options.chunk_size = sector;
  options.operation = "compare";
  QK_ASSIGN_OR_RETURN(auto engine, CopyEngine::create(device, sink, options));
  QK_TRY(engine->run());
  return sink.found;
}

}  // namespace

int run_compare(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("compare", kHelp, raw_args,
                              {{'f', nullptr, true}, {'F', nullptr, true}, {'s', nullptr, false},
                               {'p', nullptr, false}, {'q', nullptr, false},
                               {0, "backing-chain", false}, {'U', "force-share", false}},
                              status);
  if (!args) return status;
  if (args->positionals.size() != 2) return usage_error("compare", "expected two images, A and B");
  ImageOpenOptions options[2];
  const char* format_flags[2] = {"f", "F"};
  for (int i = 0; i < 2; ++i) {
    options[i].contents_needed = true;
    options[i].follow_backing = args->has("backing-chain");
    options[i].lock = !args->has("force-share");
    if (auto f = args->last(format_flags[i])) {
      auto name = parse_format_name(*f);
      if (!name.ok()) return usage_error("compare", name.error().message);
      options[i].format = *name;
    }
  }
  auto a = open_image(args->positionals[0], options[0]);
  if (!a.ok()) return report_error("compare", a.error(), kExitError);
  auto b = open_image(args->positionals[1], options[1]);
  if (!b.ok()) return report_error("compare", b.error(), kExitError);

  const bool quiet = args->has("q");
  const uint64_t a_size = a->device->info().size, b_size = b->device->info().size;
  if (a_size != b_size) {
    if (args->has("s")) {
      if (!quiet) std::printf("Strict mode: Image size mismatch!\n");
      return kExitDifferent;
    }
    if (!quiet) std::printf("Warning: Image size mismatch!\n");
  }
  const uint64_t common = std::min(a_size, b_size);
  std::shared_ptr<BlockDevice> a_view = a->device, b_view = b->device;
  if (a_size != common) a_view = std::make_shared<PrefixDevice>(a->device, common);
  if (b_size != common) b_view = std::make_shared<PrefixDevice>(b->device, common);

  ProgressBar progress(args->has("p"));
  OpOptions op_options;
  if (progress.active()) op_options.progress = [&](uint64_t done, uint64_t total) {
    progress.update(done, total);
  };
  auto result = compare(*a_view, *b_view, op_options);
  progress.finish();
  if (!result.ok()) return report_error("compare", result.error(), kExitError);
  std::optional<uint64_t> difference = result->first_difference;
  if (!difference && !result->equal)
    return report_error("compare", make_error(EIO, "compare reported a difference without an offset"),
                        kExitError);
  if (!difference && a_size != b_size) {
    BlockDevice& larger = a_size > b_size ? *a->device : *b->device;
    auto tail = first_nonzero(larger, common);
    if (!tail.ok()) return report_error("compare", tail.error(), kExitError);
    difference = *tail;
  }
  if (difference) {
    if (!quiet) std::printf("Content mismatch at offset %" PRIu64 "!\n", *difference);
    return kExitDifferent;
  }
  if (!quiet) std::printf("Images are identical.\n");
  return 0;
}

}  // namespace qcowkit::cli
