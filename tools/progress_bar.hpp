// A one-line progress bar on stderr, drawn only when stderr is a terminal
// (so scripts and logs never see carriage returns). Thread-safe, and redraws
// at most ten times a second however often it is told about progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace qcowkit::cli {

class ProgressBar {
 public:
  // `wanted`: the user asked for it (-p); it still stays silent off a terminal.
  explicit ProgressBar(bool wanted);
  ~ProgressBar();

  void update(uint64_t done, uint64_t total);
  // Draws 100% and ends the line.
  void finish();
  bool active() const { return active_; }

 private:
  void draw_locked(uint64_t done, uint64_t total);

  bool active_;
  bool finished_ = false;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::chrono::steady_clock::time_point started_;
  uint64_t last_total_ = 0;
};

}  // namespace qcowkit::cli
