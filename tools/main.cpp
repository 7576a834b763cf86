// qcowkit: the command-line face of the core. Dispatches to one verb per file.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cli_common.hpp"
#include "qcowkit/build_info.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {

const std::vector<Verb>& all_verbs() {
  static const std::vector<Verb> verbs = {
      {"info", "describe an image (size, format, features, snapshots)", run_info},
      {"check", "check an image's metadata, and repair it with -r", run_check},
      {"map", "show how guest offsets map to the image file", run_map},
      {"create", "create a new raw or qcow2 image", run_create},
      {"resize", "grow or shrink an image", run_resize},
      {"convert", "copy an image to another file and format", run_convert},
      {"compare", "compare the contents of two images", run_compare},
      {"compact", "move clusters into free space and truncate the file", run_compact},
      {"sha256", "hash the virtual contents of an image", run_sha256},
      {"measure", "how large a new image would be (qemu-img measure)", run_measure},
      {"snapshot", "list, create, apply or delete internal snapshots", run_snapshot},
      {"bitmap", "add, remove, clear, enable, disable or merge persistent bitmaps", run_bitmap},
      {"rebase", "change an image's backing file, keeping its contents (or not: -u)", run_rebase},
      {"commit", "write an image's data into its backing file", run_commit},
  };
  return verbs;
}

namespace {

void print_help() {
  std::printf(
      "usage: qcowkit VERB [OPTIONS] ARGS...\n"
      "\n"
      "Inspect, check, convert and compare raw and qcow2 disk images.\n"
      "Options and exit codes follow qemu-img where a verb exists there.\n"
      "\n"
      "verbs:\n");
  for (const auto& verb : all_verbs()) std::printf("  %-9s %s\n", verb.name, verb.summary);
  std::printf(
      "\n"
      "'qcowkit VERB --help' describes a verb. 'qcowkit --version' prints the version.\n");
}

}  // namespace
}  // namespace qcowkit::cli

int main(int argc, char** argv) {
  using namespace qcowkit::cli;
  // Compressing a cluster allocates and frees a few hundred KiB of codec
  // state; with glibc's defaults every worker thread's arena hands that
  // memory back to the kernel each time and faults it in again (about 45
  // page faults per cluster). Keep it: the tool is short-lived.
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  if (argc < 2) {
    std::fprintf(stderr, "qcowkit: missing verb (see 'qcowkit --help')\n");
    return kExitUsage;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help();
    return 0;
  }
  if (name == "--version" || name == "-V") {
    std::printf("qcowkit %s (git %s)\n", QCOWKIT_VERSION, QCOWKIT_GIT_REVISION);
    return 0;
  }
  for (const auto& verb : all_verbs()) {
    if (name == verb.name) return verb.run(VerbArgs(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "qcowkit: unknown verb '%s' (see 'qcowkit --help')\n", name.c_str());
  return kExitUsage;
}
