#include "copy/request_geometry.hpp"

#include <string>

namespace qcowkit::engine {

Error failed_at(const char* operation, const char* what, uint64_t offset, const Error& cause) {
  return make_error(cause.code, std::string(operation) + ": " + what + " failed at offset " +
                                    std::to_string(offset) + ": " + cause.message);
}

void ProgressMeter::add(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  done_ += bytes;
  if (done_ > total_) done_ = total_;
  if (!fn_) return;
  fn_(done_, total_);
  reported_total_ = done_ == total_;
}

void ProgressMeter::finish() {
  std::lock_guard lock(mutex_);
  done_ = total_;
  if (!fn_ || reported_total_) return;
  fn_(done_, total_);
  reported_total_ = true;
}

}  // namespace qcowkit::engine
