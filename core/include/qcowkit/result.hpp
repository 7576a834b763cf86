// Errors are values in qcowkit: every fallible call returns a Result<T> (or a
// Status, which is Result<void>) carrying an errno-style code and a message
// that names what failed and where. No exception is used for control flow,
// so nothing can escape into nbdkit's C callbacks or into JavaScript.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace qcowkit {

struct Error {
  int code = EIO;       // errno value: EIO, EINVAL, ENOSPC, EROFS, ENOTSUP, ...
  std::string message;  // one line, for humans: what failed, and where
};

// Builds an Error; `code` must be a positive errno value.
Error make_error(int code, std::string message);

// Prefixes an error's message with context ("disk.qcow2: "), keeping its code.
Error with_context(Error error, const std::string& context);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }

  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace qcowkit

#define QK_CONCAT_INNER_(a, b) a##b
#define QK_CONCAT_(a, b) QK_CONCAT_INNER_(a, b)

// Returns the error from the enclosing function when `expr` failed.
#define QK_TRY(expr)                                     \
  do {                                                   \
    auto&& qk_try_result_ = (expr);                      \
    if (!qk_try_result_.ok())                            \
      return std::move(qk_try_result_).error();          \
  } while (0)

// `QK_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value, or
// returns f()'s error from the enclosing function.
#define QK_ASSIGN_OR_RETURN(decl, expr) \
  QK_ASSIGN_OR_RETURN_IMPL_(QK_CONCAT_(qk_result_, __COUNTER__), decl, expr)
#define QK_ASSIGN_OR_RETURN_IMPL_(tmp, decl, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).error();    \
  decl = std::move(tmp).value()
