#include "qcowkit/result.hpp"

namespace qcowkit {

Error make_error(int code, std::string message) {
  return Error{code > 0 ? code : EIO, std::move(message)};
}

Error with_context(Error error, const std::string& context) {
  if (!context.empty()) error.message = context + ": " + error.message;
  return error;
}

}  // namespace qcowkit
