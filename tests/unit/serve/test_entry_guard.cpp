// The exception guard at the nbdkit entry points (serve/nbdkit/): an
// exception becomes a logged error, an errno and the callback's failure
// value. nbdkit's two functions it calls are stood in for here.
#include <cstdarg>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>

#include "serve/nbdkit/entry_guard.hpp"
#include "test_support.hpp"

namespace {
std::string g_logged;
int g_plugin_errno = 0;
}  // namespace

extern "C" void nbdkit_error(const char* fs, ...) {
  char buf[512];
  va_list args;
  va_start(args, fs);
  std::vsnprintf(buf, sizeof buf, fs, args);
  va_end(args);
  g_logged = buf;
}
extern "C" void nbdkit_set_error(int err) { g_plugin_errno = err; }

using namespace qcowkit::serve::nbdkit;

namespace {

int filter_pread(void*, uint32_t count, int* err) {
  if (count > 100) throw std::bad_alloc();
  *err = 0;
  return 0;
}
void* plugin_open(int readonly) {
  if (readonly) throw std::runtime_error("boom");
  return &g_plugin_errno;
}
void plugin_close(void*) { throw 42; }

}  // namespace

TEST_CASE("entry guard: bad_alloc in a filter callback is ENOMEM through err, logged") {
  g_logged.clear();
  int err = 0;
  auto pread = guard<"pread", filter_pread>;
  REQUIRE(pread(nullptr, 10, &err) == 0);
  REQUIRE(pread(nullptr, 1000, &err) == -1);
  REQUIRE(err == ENOMEM);
  REQUIRE(g_logged == "pread: out of memory");
}

TEST_CASE("entry guard: other exceptions in plugin callbacks are EIO through nbdkit_set_error") {
  g_plugin_errno = 0;
  auto open = guard<"open", plugin_open>;
  REQUIRE(open(0) != nullptr);
  REQUIRE(open(1) == nullptr);
  REQUIRE(g_plugin_errno == EIO);
  REQUIRE(g_logged == "open: internal error: boom");
  auto close = guard<"close", plugin_close>;
  close(nullptr);  // does not throw
  REQUIRE(g_logged == "close: internal error (unknown exception)");
}

TEST_CASE("entry guard: guarded() returns the failure value and stores the errno") {
  int err = 0;
  const int r = guarded("zero", -1, &err, []() -> int { throw std::bad_alloc(); });
  REQUIRE(r == -1);
  REQUIRE(err == ENOMEM);
  REQUIRE(guarded("zero", -1, &err, [] { return 7; }) == 7);
}
