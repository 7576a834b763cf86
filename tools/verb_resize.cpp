// qcowkit resize: grow (or with --shrink, shrink) a raw or qcow2 image.
#include <cctype>
#include <cstdio>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "qcowkit/option_values.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit resize [-f raw|qcow2] [--shrink] IMAGE [+|-]SIZE\n"
    "\n"
    "Sets the virtual size to SIZE, or grows or shrinks it by SIZE. Shrinking\n"
    "discards everything past the new end, so it needs --shrink.\n";

}  // namespace

int run_resize(const VerbArgs& raw_args) {
  int status = 0;
  // "-1G" must reach us as a size, not an option: options end before the size.
  VerbArgs words = raw_args;
  if (words.size() >= 2 && words.back().size() > 1 && words.back()[0] == '-' &&
      std::isdigit(static_cast<unsigned char>(words.back()[1])))
    words.insert(words.end() - 1, "--");
  auto args = parse_verb_args("resize", kHelp, words,
                              {{0, "shrink", false}, {'f', nullptr, true}, {'q', nullptr, false}},
                              status);
  if (!args) return status;
  if (args->has("force-share"))
    return usage_error("resize", "-U (force-share) cannot be used: resize needs the image's write lock");
  if (args->positionals.size() != 2) return usage_error("resize", "expected IMAGE and SIZE");
  auto change = parse_size_change(args->positionals[1]);
  if (!change.ok()) return usage_error("resize", change.error().message);
  ImageOpenOptions open_options;
  open_options.read_only = false;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("resize", name.error().message);
    open_options.format = *name;
  }

  const std::string& path = args->positionals[0];
  auto image = open_image(path, open_options);
  if (!image.ok()) return report_error("resize", image.error());
  uint64_t current = image->device->info().size;
  auto new_size = change->apply(current);
  if (!new_size.ok()) return report_error("resize", new_size.error());
  bool shrinking = *new_size < current;
  if (shrinking && !args->has("shrink"))
    return report_error("resize", make_error(EINVAL, "shrinking " + path +
                                                         " would discard data; pass --shrink"));
  Status resized = image->qcow2 ? image->qcow2->resize(*new_size, shrinking)
                                : image->device->resize(*new_size);
  if (resized.ok()) resized = image->device->close();
  if (!resized.ok()) return report_error("resize", with_context(resized.error(), path));
  if (!args->has("q")) std::printf("Image resized.\n");
  return 0;
}

}  // namespace qcowkit::cli
