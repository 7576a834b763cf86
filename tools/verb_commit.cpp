#include "verbs.hpp"
namespace qcowkit::cli {
int run_commit(const VerbArgs&) { return 1; }
}
