// The guard at every nbdkit entry point of qcowkit's modules (the qcow2
// plugin, the blockcache and qcow2 filters): no C++ exception may unwind
// into nbdkit's C code, which would terminate the server. The core reports
// errors as values, but the standard library still throws std::bad_alloc
// (a vector for a large request) and could throw others.
//
//   int f_pread(..., int* err) {
//     return guarded("pread", -1, err, [&] { ... return 0; });
//   }
//
// An exception is logged with nbdkit_error naming the entry point, its
// errno (ENOMEM for std::bad_alloc, EIO otherwise) is stored in *err when
// `err` is given (filters; plugins pass their own and hand it to
// nbdkit_set_error), and `on_exception` is returned.
//
// Or, where the callbacks are registered, guard a whole callback at once:
//
//   f.pread = guard<"pread", bc_pread>;
//
// which returns -1 (or nullptr, or nothing) on an exception and passes the
// errno through the callback's last argument when that is an `int*` (the
// filter API's err), or to nbdkit_set_error otherwise.
//
// Thread safety: none needed; it only catches.
#pragma once

#include <algorithm>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace qcowkit::serve::nbdkit {

// Logs the exception being handled (call only inside a catch block) and
// returns the errno that stands for it.
int report_exception(const char* entry) noexcept;

template <class R, class F>
R guarded(const char* entry, R on_exception, int* err, F&& body) noexcept {
  try {
    return std::forward<F>(body)();
  } catch (...) {
    const int code = report_exception(entry);
    if (err) *err = code;
    return on_exception;
  }
}

// For entry points that return nothing (close, cleanup, unload).
template <class F>
void guarded_void(const char* entry, F&& body) noexcept {
  try {
    std::forward<F>(body)();
  } catch (...) {
    (void)report_exception(entry);
  }
}

// A callback's name as a template argument (for guard<>).
template <size_t N>
struct EntryName {
  constexpr EntryName(const char (&s)[N]) { std::copy_n(s, N, text); }
  char text[N];
};

// Hands an errno to nbdkit_set_error (for plugin callbacks, which have no err).
void set_plugin_error(int code) noexcept;

// True when the last of Args is int* (a filter callback's err).
template <class... Args>
constexpr bool last_is_err() {
  if constexpr (sizeof...(Args) == 0) return false;
  else return std::is_same_v<std::tuple_element_t<sizeof...(Args) - 1, std::tuple<Args...>>, int*>;
}

template <EntryName Name, auto Fn>
struct Guarded;

template <EntryName Name, class R, class... Args, R (*Fn)(Args...)>
struct Guarded<Name, Fn> {
  static R call(Args... args) noexcept {
    try {
      return Fn(args...);
    } catch (...) {
      const int code = report_exception(Name.text);
      if constexpr (last_is_err<Args...>())
        *std::get<sizeof...(Args) - 1>(std::tie(args...)) = code;
      else
        set_plugin_error(code);
      if constexpr (std::is_pointer_v<R>) return nullptr;
      else if constexpr (!std::is_void_v<R>) return static_cast<R>(-1);
    }
  }
};

template <EntryName Name, auto Fn>
inline constexpr auto guard = &Guarded<Name, Fn>::call;

}  // namespace qcowkit::serve::nbdkit
