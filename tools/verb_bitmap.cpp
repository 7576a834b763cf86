// qcowkit bitmap: add, remove, clear, enable, disable or merge persistent
// dirty bitmaps of a qcow2 image, as `qemu-img bitmap` does: the same
// options and combinations, the actions run in the order given, and the
// same exit codes (1 when an action fails, the actions before it kept).
// The operations themselves live in the qcow2 engine (bitmap_ops.cpp).
#include <cstdio>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "qcowkit/option_values.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit bitmap (--merge SOURCE | --add | --remove | --clear | --enable |\n"
    "                       --disable)... [-b SOURCE_FILE [-F SOURCE_FMT]] [-g GRANULARITY]\n"
    "                       [--disabled] [-f qcow2] IMAGE BITMAP\n"
    "\n"
    "Runs one or more actions, in the order given, on the persistent bitmap\n"
    "BITMAP of the qcow2 image IMAGE (v3, compat=1.1):\n"
    "  --add           create it, empty and enabled (recording writes)\n"
    "  --remove        delete it\n"
    "  --clear         mark every granule clean\n"
    "  --enable        let it record writes\n"
    "  --disable       stop it recording writes\n"
    "  --merge SOURCE  add the bits of bitmap SOURCE (of IMAGE, or of -b's file)\n"
    "  -b SOURCE_FILE  the image --merge reads SOURCE from (opened read-only)\n"
    "  -F SOURCE_FMT   its format (qcow2), with -b only\n"
    "  -g GRANULARITY  bytes per bit for --add: a power of two, 512 to 2G\n"
    "                  (default: the cluster size, kept within 4K..64K)\n"
    "  --disabled      with --add: create it disabled (same as --add --disable)\n"
    "  -f qcow2        IMAGE's format\n"
    "\n"
    "The image is locked for writing: a running VM or server refuses it. Each\n"
    "action is crash-safe: a power cut leaves the old or the new bitmap\n"
    "directory, at worst with leaked clusters (check -r leaks).\n";

struct Action {
  std::string name;    // add, remove, clear, enable, disable, merge
  std::string source;  // merge only
};

// The actions in command-line order (ParsedArgs keeps each option's values,
// not the order between options). Values of other options are skipped.
std::vector<Action> actions_in_order(const VerbArgs& args) {
  std::vector<Action> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a == "-b" || a == "-F" || a == "-g" || a == "-f") {
      ++i;
      continue;
    }
    for (const char* name : {"add", "remove", "clear", "enable", "disable"})
      if (a == std::string("--") + name) out.push_back({name, ""});
    if (a == "--merge" && i + 1 < args.size()) out.push_back({"merge", args[++i]});
    else if (a.rfind("--merge=", 0) == 0) out.push_back({"merge", a.substr(8)});
  }
  return out;
}

Result<uint64_t> granularity_of(const std::string& text) {
  auto bytes = parse_size(text);
  if (!bytes.ok()) return make_error(EINVAL, "invalid granularity '" + text + "'");
  return *bytes;
}

}  // namespace

int run_bitmap(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("bitmap", kHelp, raw_args,
                              {{0, "add", false},
                               {0, "remove", false},
                               {0, "clear", false},
                               {0, "enable", false},
                               {0, "disable", false},
                               {0, "merge", true},
                               {0, "disabled", false},
                               {'b', nullptr, true},
                               {'F', nullptr, true},
                               {'g', nullptr, true},
                               {'f', nullptr, true}},
                              status);
  if (!args) return status;
  std::vector<Action> actions = actions_in_order(raw_args);
  if (actions.empty())
    return usage_error("bitmap", "need at least one of --add, --remove, --clear, --enable, "
                                 "--disable, or --merge");
  bool adding = false, merging = false;
  for (const Action& a : actions) {
    adding |= a.name == "add";
    merging |= a.name == "merge";
  }
  if (args->has("g") && !adding) return usage_error("bitmap", "granularity only supported with --add");
  if (args->has("disabled") && !adding) return usage_error("bitmap", "--disabled only goes with --add");
  if (args->has("b") && !merging)
    return usage_error("bitmap", "merge bitmap source file only supported with --merge");
  if (args->has("F") && !args->has("b")) return usage_error("bitmap", "-F only supported with -b");
  if (args->positionals.size() != 2) return usage_error("bitmap", "expecting filename and bitmap name");
  uint64_t granularity = 0;
  if (auto g = args->last("g")) {
    auto bytes = granularity_of(*g);
    if (!bytes.ok()) return usage_error("bitmap", bytes.error().message);
    granularity = *bytes;
  }
  ImageOpenOptions options;
  options.read_only = false;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("bitmap", name.error().message);
    options.format = *name;
  }
  std::optional<std::string> source_format;
  if (auto f = args->last("F")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("bitmap", name.error().message);
    source_format = *name;
  }

  const std::string& path = args->positionals[0];
  const std::string& bitmap = args->positionals[1];
  auto image = open_image(path, options);
  if (!image.ok()) return report_error("bitmap", image.error());
  if (!image->qcow2)
    return report_error("bitmap", make_error(ENOTSUP, path + ": only qcow2 images store persistent bitmaps"));
  Qcow2Image& qcow2 = *image->qcow2;

  // -b: the image merges read from, unless it is IMAGE itself (which we
  // hold locked for writing: opening it again would conflict with us).
  std::optional<OpenedImage> source;
  if (auto b = args->last("b")) {
    auto ours = posix_host().canonical(path), theirs = posix_host().canonical(*b);
    if (!(ours.ok() && theirs.ok() && *ours == *theirs)) {
      ImageOpenOptions so;
      so.format = source_format;
      auto opened = open_image(*b, so);
      if (!opened.ok()) return report_error("bitmap", opened.error());
      if (!opened->qcow2)
        return report_error("bitmap", make_error(ENOTSUP, *b + ": only qcow2 images store persistent bitmaps"));
      source = std::move(opened).value();
    }
  }

  for (const Action& a : actions) {
    Status st;
    if (a.name == "add") {
      st = qcow2.add_bitmap(bitmap, granularity, !args->has("disabled"));
    } else if (a.name == "remove") {
      st = qcow2.remove_bitmap(bitmap);
    } else if (a.name == "clear") {
      st = qcow2.clear_bitmap(bitmap);
    } else if (a.name == "enable" || a.name == "disable") {
      st = qcow2.enable_bitmap(bitmap, a.name == "enable");
    } else if (source) {
      auto ranges = source->qcow2->bitmap_ranges(a.source);
      if (!ranges.ok())
        st = ranges.error();
      else
        st = qcow2.merge_bitmap_ranges(bitmap, *ranges, source->device->info().size);
    } else {
      st = qcow2.merge_bitmap(bitmap, a.source);
    }
    if (!st.ok()) {
      (void)image->close();
      return report_error("bitmap", with_context(st.error(), "operation " + a.name +
                                                              " on bitmap '" + bitmap + "' failed"));
    }
  }
  Status closed = image->close();
  if (!closed.ok()) return report_error("bitmap", with_context(closed.error(), path));
  return 0;
}

}  // namespace qcowkit::cli
