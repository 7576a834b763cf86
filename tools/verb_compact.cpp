// qcowkit compact: Qcow2Image::compact, then reports what the file shrank by.
#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include "cli_common.hpp"
#include "human_format.hpp"
#include "image_open.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit compact IMAGE\n"
    "\n"
    "Moves clusters from the end of a qcow2 file into free space earlier in it,\n"
    "then truncates the file. The virtual contents do not change.\n";

}  // namespace

int run_compact(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("compact", kHelp, raw_args, {{'q', nullptr, false}}, status);
  if (!args) return status;
  if (args->has("force-share"))
    return usage_error("compact", "-U (force-share) cannot be used: compact needs the image's write lock");
  if (args->positionals.size() != 1) return usage_error("compact", "expected exactly one IMAGE");
  const std::string& path = args->positionals[0];
  ImageOpenOptions open_options;
  open_options.read_only = false;
  auto image = open_image(path, open_options);
  if (!image.ok()) return report_error("compact", image.error());
  if (!image->qcow2)
    return report_error("compact", make_error(ENOTSUP, path + " is not a qcow2 image"));
  std::error_code ignored;
  uint64_t before = std::filesystem::file_size(path, ignored);
  Status done = image->qcow2->compact();
  if (done.ok()) done = image->qcow2->close();
  if (!done.ok()) return report_error("compact", with_context(done.error(), path));
  uint64_t after = std::filesystem::file_size(path, ignored);
  if (!args->has("q"))
    std::printf("%s: file size %" PRIu64 " -> %" PRIu64 " bytes (%s saved)\n", path.c_str(),
                before, after, human_size(before > after ? before - after : 0).c_str());
  return 0;
}

}  // namespace qcowkit::cli
