// qcowkit snapshot: list, create, apply or delete the internal snapshots of a
// qcow2 image, as `qemu-img snapshot` does (same options, output and exit
// codes). The snapshot operations themselves live in the qcow2 engine.
#include <cstdio>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "snapshot_list.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit snapshot [-q] [-U] [-f qcow2] [-l | -c NAME | -a SNAPSHOT | -d SNAPSHOT] IMAGE\n"
    "\n"
    "  -l            list the snapshots (the default when no action is given\n"
    "                prints nothing, as qemu-img)\n"
    "  -c NAME       create a snapshot of the image's current contents\n"
    "  -a SNAPSHOT   apply (revert the image to) a snapshot, by ID or name\n"
    "  -d SNAPSHOT   delete a snapshot, by ID or name\n"
    "  -q            quiet\n"
    "  -U            list without taking the image's lock (-l only)\n"
    "\n"
    "Each change is crash-safe: a power cut leaves the old or the new\n"
    "snapshot table, at worst with leaked clusters (check -r leaks).\n";

}  // namespace

int run_snapshot(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("snapshot", kHelp, raw_args,
                              {{'l', nullptr, false},
                               {'c', nullptr, true},
                               {'a', nullptr, true},
                               {'d', nullptr, true},
                               {'q', nullptr, false},
                               {'f', nullptr, true},
                               {'U', "force-share", false}},
                              status);
  if (!args) return status;
  int actions = 0;
  char action = 0;
  for (char a : {'l', 'c', 'a', 'd'})
    if (args->has(std::string(1, a))) ++actions, action = a;
  if (actions > 1) return usage_error("snapshot", "cannot mix '-l', '-a', '-c', '-d'");
  if (args->positionals.size() != 1) return usage_error("snapshot", "expected one IMAGE");
  ImageOpenOptions options;
  options.read_only = action == 'l' || action == 0;
  if (args->has("force-share")) {
    if (!options.read_only)
      return usage_error("snapshot", "-U (force-share) only goes with -l: changes need the image's lock");
    options.lock = false;
  }
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("snapshot", name.error().message);
    options.format = *name;
  }
  const std::string& path = args->positionals[0];
  auto image = open_image(path, options);
  if (!image.ok()) return report_error("snapshot", image.error());
  if (!image->qcow2)
    return report_error("snapshot", make_error(ENOTSUP, path + ": only qcow2 images have snapshots"));
  Qcow2Image& qcow2 = *image->qcow2;

  Status st;
  std::string what;
  switch (action) {
    case 'l': {
      const auto snapshots = qcow2.details().snapshots;
      if (!snapshots.empty()) print_snapshot_list(snapshots);
      break;
    }
    case 'c':
      what = "create snapshot '" + *args->last("c") + "'";
      st = qcow2.create_snapshot(*args->last("c"));
      break;
    case 'a':
      what = "apply snapshot '" + *args->last("a") + "'";
      st = qcow2.apply_snapshot(*args->last("a"));
      break;
    case 'd':
      what = "delete snapshot '" + *args->last("d") + "'";
      st = qcow2.delete_snapshot(*args->last("d"));
      break;
    default:
      break;
  }
  if (st.ok()) st = image->device->close();
  if (!st.ok()) return report_error("snapshot", with_context(st.error(), "could not " + what + " in " + path));
  return 0;
}

}  // namespace qcowkit::cli
