#include "image_session.hpp"

#include <algorithm>

#include "js_codecs.hpp"

namespace qcowkit::wasm {
namespace {

// The map is walked in windows so that no table of a huge image is held
// whole (a 64 MiB window of 512-byte clusters is at most 128 Ki entries).
constexpr uint64_t kMapWindow = 64u << 20;
// Bound on cached qcow2 metadata: the browser tab should stay small.
constexpr uint64_t kMetadataCacheBytes = 8u << 20;

bool can_merge(const MapRun& a, const MapRun& b) {
  if (a.start + a.length != b.start) return false;
  if (a.depth != b.depth || a.present != b.present || a.zero != b.zero || a.data != b.data ||
      a.compressed != b.compressed || a.offset.has_value() != b.offset.has_value())
    return false;
  return !a.offset || *a.offset + a.length == *b.offset;
}

}  // namespace

Result<std::unique_ptr<ImageSession>> ImageSession::open(std::shared_ptr<BlockDevice> file,
                                                         const OpenRequest& request) {
  const bool is_qcow2 = request.format ? *request.format == ImageFormat::qcow2
                                       : Qcow2Image::looks_like_qcow2(*file);
  if (!is_qcow2) return std::unique_ptr<ImageSession>(new ImageSession(std::move(file), nullptr));
  Qcow2OpenOptions options;
  options.read_only = request.read_only;
  options.backing = request.backing;
  options.metadata_cache_bytes = kMetadataCacheBytes;
  options.codecs = &js_codecs();
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::open(file, options));
  return std::unique_ptr<ImageSession>(new ImageSession(std::move(file), std::move(image)));
}

// Calls fn for each run of one window, unmerged. Runs that are not data are
// split into present (zero clusters) and not present (unallocated) by the
// image's extents, which know the difference.
Status ImageSession::map_window(uint64_t offset, uint64_t length,
                                const std::function<Status(const MapRun&)>& fn) {
  if (!qcow2_) {
    // A raw file maps to itself.
    return fn(MapRun{offset, length, 0, true, false, true, false, offset});
  }
  QK_ASSIGN_OR_RETURN(auto entries, qcow2_->map(offset, length));
  for (const MapEntry& e : entries) {
    MapRun run{e.offset, e.length, e.depth, true, e.zero, e.data, e.compressed, e.host_offset};
    if (e.data) {
      QK_TRY(fn(run));
      continue;
    }
    QK_TRY(for_each_extent(*qcow2_, e.offset, e.length, [&](const Extent& x) {
      MapRun part = run;
      part.start = x.offset;
      part.length = x.length;
      part.present = x.kind != ExtentKind::hole;
      if (part.offset) part.offset = *run.offset + (x.offset - e.offset);
      return fn(part);
    }));
  }
  return {};
}

Result<std::vector<MapRun>> ImageSession::map(uint64_t offset, uint64_t length) {
  QK_TRY(check_request(guest().info(), offset, length, false, "map"));
  std::vector<MapRun> runs;
  auto add = [&runs](const MapRun& run) -> Status {
    if (run.length == 0) return {};
    if (!runs.empty() && can_merge(runs.back(), run))
      runs.back().length += run.length;
    else
      runs.push_back(run);
    return {};
  };
  const uint64_t end = offset + length;
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t n = std::min(kMapWindow, end - pos);
    QK_TRY(map_window(pos, n, add));
    pos += n;
  }
  return runs;
}

Result<std::vector<MapBin>> ImageSession::map_summary(uint32_t bins) {
  if (bins == 0 || bins > 1u << 20)
    return make_error(EINVAL, "map summary: bin count " + std::to_string(bins) + " is not in 1..2^20");
  const uint64_t size = virtual_size();
  std::vector<MapBin> out(bins);
  if (size == 0) return out;
  const uint64_t bin_size = (size + bins - 1) / bins;
  auto add = [&](const MapRun& run) -> Status {
    for (uint64_t pos = run.start, end = run.start + run.length; pos < end;) {
      const uint64_t bin = pos / bin_size;
      const uint64_t n = std::min(end, (bin + 1) * bin_size) - pos;
      MapBin& b = out[std::min<uint64_t>(bin, bins - 1)];
      if (run.compressed)
        b.compressed += n;
      else if (run.data)
        b.data += n;
      else if (run.present || run.depth > 0)
        b.zero += n;
      else
        b.unallocated += n;
      pos += n;
    }
    return {};
  };
  for (uint64_t pos = 0; pos < size;) {
    const uint64_t n = std::min(kMapWindow, size - pos);
    QK_TRY(map_window(pos, n, add));
    pos += n;
  }
  return out;
}

Result<CheckReport> ImageSession::check() {
  if (!qcow2_) return make_error(ENOTSUP, "check: a raw image has no metadata to check");
  return qcow2_->check(RepairMode::none);
}

Status ImageSession::close() {
  Status first;
  if (qcow2_) {
    Status st = qcow2_->close();
    if (!st.ok()) first = st;
  }
  Status st = file_->close();
  if (first.ok() && !st.ok()) first = st;
  return first;
}

}  // namespace qcowkit::wasm
