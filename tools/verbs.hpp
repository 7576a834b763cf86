// The verbs of `qcowkit`, one file each (verb_*.cpp). Each takes the words
// after its name and returns the process exit status.
#pragma once

#include <string>
#include <vector>

namespace qcowkit::cli {

using VerbArgs = std::vector<std::string>;

int run_info(const VerbArgs& args);
int run_check(const VerbArgs& args);
int run_map(const VerbArgs& args);
int run_create(const VerbArgs& args);
int run_resize(const VerbArgs& args);
int run_convert(const VerbArgs& args);
int run_compare(const VerbArgs& args);
int run_compact(const VerbArgs& args);
int run_sha256(const VerbArgs& args);
int run_snapshot(const VerbArgs& args);
int run_measure(const VerbArgs& args);
int run_bitmap(const VerbArgs& args);
int run_rebase(const VerbArgs& args);
int run_commit(const VerbArgs& args);

struct Verb {
  const char* name;
  const char* summary;
  int (*run)(const VerbArgs&);
};

const std::vector<Verb>& all_verbs();

}  // namespace qcowkit::cli
