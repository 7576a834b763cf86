#include "progress_bar.hpp"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "human_format.hpp"

namespace qcowkit::cli {

ProgressBar::ProgressBar(bool wanted)
    : active_(wanted && isatty(STDERR_FILENO)), started_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() {
  if (active_ && !finished_) std::fputc('\n', stderr);
}

void ProgressBar::update(uint64_t done, uint64_t total) {
  if (!active_) return;
  std::lock_guard lock(mutex_);
  last_total_ = total;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
  last_draw_ = now;
  draw_locked(done, total);
}

void ProgressBar::finish() {
  if (!active_) return;
  std::lock_guard lock(mutex_);
  if (finished_) return;
  draw_locked(last_total_, last_total_);
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::draw_locked(uint64_t done, uint64_t total) {
  constexpr int kWidth = 40;
  double fraction = total ? static_cast<double>(done) / total : 1.0;
  if (fraction > 1) fraction = 1;
  int filled = static_cast<int>(fraction * kWidth);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  double rate = seconds > 0 ? done / seconds : 0;
  std::fprintf(stderr, "\r[%s] %5.1f%%  %s / %s  %s/s ", bar.c_str(), fraction * 100,
               human_size(done).c_str(), human_size(total).c_str(),
               human_size(static_cast<uint64_t>(rate)).c_str());
  std::fflush(stderr);
}

}  // namespace qcowkit::cli
