// What the guest address space holds: extents (for NBD block status and
// sparse copies) and the host mapping (for `map`).
#include <algorithm>

#include "qcow2/image_impl.hpp"

namespace qcowkit {

using namespace qcow2;

namespace {

constexpr size_t kMaxExtentsPerCall = 4096;

void append(std::vector<Extent>& out, uint64_t offset, uint64_t length, ExtentKind kind) {
  if (length == 0) return;
  if (!out.empty() && out.back().kind == kind && out.back().offset + out.back().length == offset)
    out.back().length += length;
  else
    out.push_back(Extent{offset, length, kind});
}

}  // namespace

// Whether the image's clusters are allocated in its metadata far beyond what
// the file really holds on disk (preallocation=metadata). Only then do data
// clusters get split by the holes of the file beneath, as qemu-img map does
// it (the same test: more clusters in use than 10/9 of the file's real
// allocation and a quarter of its length).
Result<bool> Qcow2Image::Impl::metadata_preallocated_locked() {
  if (metadata_preallocated_) return *metadata_preallocated_;
  const uint64_t file_size = data_file_->info().size;
  uint64_t real_bytes = 0;
  QK_TRY(for_each_extent(*data_file_, 0, file_size, [&](const Extent& e) {
    if (e.kind == ExtentKind::data) real_bytes += e.length;
    return Status{};
  }));
  const uint64_t threshold =
      std::max(real_bytes / cluster_size_ * 10 / 9, file_size / 4 / cluster_size_);
  bool preallocated = false;
  uint64_t in_use = 0;
  for (uint64_t c = 0; c < (file_size + cluster_size_ - 1) / cluster_size_ && !preallocated; ++c) {
    QK_ASSIGN_OR_RETURN(uint64_t count, refcount_locked(c));
    if (count && ++in_use > threshold) preallocated = true;
  }
  metadata_preallocated_ = preallocated;
  return preallocated;
}

Result<std::vector<Extent>> Qcow2Image::Impl::extents(uint64_t offset, uint64_t length) {
  QK_TRY(check_open("extents", false));
  ReaderLock gate(io_gate_);
  QK_TRY(check_request(DeviceInfo{header_.size, 1, read_only_}, offset, length, false, "extents"));
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  bool split_by_file_holes;
  {
    MutexLock lock(mutex_);
    QK_ASSIGN_OR_RETURN(split_by_file_holes, metadata_preallocated_locked());
  }
  for (uint64_t pos = offset; pos < end && out.size() < kMaxExtentsPerCall;) {
    Span span;
    {
      MutexLock lock(mutex_);
      QK_ASSIGN_OR_RETURN(span, lookup_locked(pos, end - pos));
    }
    switch (span.kind) {
      case SpanKind::zero:
        append(out, pos, span.length, ExtentKind::zero);
        break;
      case SpanKind::compressed:
        append(out, pos, span.length, ExtentKind::data);
        break;
      case SpanKind::data: {
        if (!split_by_file_holes) {
          append(out, pos, span.length, ExtentKind::data);
          break;
        }
        // A preallocated cluster over a hole in the file reads as zeroes.
        const uint64_t file_size = data_file_->info().size;
        uint64_t done = 0;
        while (done < span.length) {
          const uint64_t host = span.host_offset + done;
          if (host >= file_size) {
            append(out, pos + done, span.length - done, ExtentKind::zero);
            break;
          }
          const uint64_t want = std::min(span.length - done, file_size - host);
          QK_ASSIGN_OR_RETURN(auto host_extents, data_file_->extents(host, want));
          for (const Extent& e : host_extents)
            append(out, pos + done + (e.offset - host), e.length,
                   e.kind == ExtentKind::data ? ExtentKind::data : ExtentKind::zero);
          if (host_extents.empty()) break;
          done = host_extents.back().offset + host_extents.back().length - span.host_offset;
        }
        break;
      }
      case SpanKind::unallocated: {
        if (!backing_) {
          append(out, pos, span.length, ExtentKind::hole);
          break;
        }
        const uint64_t backing_size = backing_->info().size;
        uint64_t covered = 0;
        if (pos < backing_size) {
          const uint64_t want = std::min(span.length, backing_size - pos);
          QK_TRY(for_each_extent(*backing_, pos, want, [&](const Extent& e) {
            append(out, e.offset, e.length, e.kind);
            return Status{};
          }));
          covered = want;
        }
        append(out, pos + covered, span.length - covered, ExtentKind::hole);
        break;
      }
    }
    pos += span.length;
  }
  return out;
}

Result<std::vector<MapEntry>> Qcow2Image::Impl::map(uint64_t offset, uint64_t length) {
  QK_TRY(check_open("map", false));
  ReaderLock gate(io_gate_);
  QK_TRY(check_request(DeviceInfo{header_.size, 1, read_only_}, offset, length, false, "map"));
  std::vector<MapEntry> out;
  bool split_by_file_holes;
  {
    MutexLock lock(mutex_);
    QK_ASSIGN_OR_RETURN(split_by_file_holes, metadata_preallocated_locked());
  }
  auto add = [&out](MapEntry e) {
    if (e.length == 0) return;
    if (!out.empty()) {
      MapEntry& last = out.back();
      const bool same = last.data == e.data && last.zero == e.zero && last.present == e.present &&
                        last.compressed == e.compressed && last.depth == e.depth &&
                        last.host_offset.has_value() == e.host_offset.has_value() &&
                        (!e.host_offset || *last.host_offset + last.length == *e.host_offset) &&
                        last.offset + last.length == e.offset;
      if (same) {
        last.length += e.length;
        return;
      }
    }
    out.push_back(e);
  };
  const uint64_t end = offset + length;
  for (uint64_t pos = offset; pos < end;) {
    Span span;
    {
      MutexLock lock(mutex_);
      QK_ASSIGN_OR_RETURN(span, lookup_locked(pos, end - pos));
    }
    MapEntry e;
    e.offset = pos;
    e.length = span.length;
    switch (span.kind) {
      case SpanKind::zero:
        e.present = true;
        e.zero = true;
        if (span.preallocated) e.host_offset = span.host_offset;
        break;
      case SpanKind::compressed:
        e.present = e.data = e.compressed = true;
        break;
      case SpanKind::data: {
        e.present = e.data = true;
        if (!split_by_file_holes) {
          e.host_offset = span.host_offset;
          break;
        }
        // As qemu-img does, say "zero" where the file itself has a hole.
        const uint64_t file_size = data_file_->info().size;
        uint64_t done = 0;
        while (done < span.length) {
          const uint64_t host = span.host_offset + done;
          MapEntry part = e;
          part.offset = pos + done;
          part.host_offset = host;
          if (host >= file_size) {
            part.length = span.length - done;
            part.zero = true;
            add(part);
            break;
          }
          QK_ASSIGN_OR_RETURN(auto host_extents,
                              data_file_->extents(host, std::min(span.length - done, file_size - host)));
          if (host_extents.empty()) break;
          for (const Extent& h : host_extents) {
            MapEntry piece = e;
            piece.offset = pos + (h.offset - span.host_offset);
            piece.length = h.length;
            piece.host_offset = h.offset;
            piece.zero = h.kind != ExtentKind::data;
            add(piece);
          }
          done = host_extents.back().offset + host_extents.back().length - span.host_offset;
        }
        pos += span.length;
        continue;
      }
      case SpanKind::unallocated:
        if (backing_) {
          const uint64_t backing_size = backing_->info().size;
          uint64_t covered = 0;
          if (pos < backing_size) {
            const uint64_t want = std::min(span.length, backing_size - pos);
            QK_TRY(for_each_extent(*backing_, pos, want, [&](const Extent& b) {
              MapEntry piece;
              piece.offset = b.offset;
              piece.length = b.length;
              piece.depth = 1;
              piece.present = b.kind != ExtentKind::hole;
              piece.data = b.kind == ExtentKind::data;
              piece.zero = b.kind != ExtentKind::data;
              add(piece);
              return Status{};
            }));
            covered = want;
          }
          MapEntry rest;
          rest.offset = pos + covered;
          rest.length = span.length - covered;
          rest.depth = 1;
          rest.zero = true;
          add(rest);
        } else {
          e.zero = true;
          if (span.preallocated) e.host_offset = span.host_offset;  // as qemu-img shows it
        }
        break;
    }
    if (span.kind != SpanKind::unallocated || !backing_) add(e);
    pos += span.length;
  }
  return out;
}

}  // namespace qcowkit
