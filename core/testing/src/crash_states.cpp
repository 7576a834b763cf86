#include "qcowkit/testing/crash_states.hpp"

#include <random>

#include "qcowkit/block_device.hpp"

namespace qcowkit::testing {

const char* to_string(CrashStyle style) {
  switch (style) {
    case CrashStyle::durable_only: return "durable-only";
    case CrashStyle::everything: return "everything";
    case CrashStyle::random_subset: return "random-subset";
    case CrashStyle::random_torn: return "random-torn";
    case CrashStyle::torn_prefix: return "torn-prefix";
    case CrashStyle::drop_one: return "drop-one";
  }
  return "crash";
}

namespace {

using Fate = CrashChoice::Fate;

// Tears `op`: a random non-empty proper subset of its pieces when it has
// two or more (one piece cannot tear), else keeps it whole.
void tear(CrashChoice& choice, size_t index, const LoggedOp& op, std::mt19937_64& rng, bool prefix) {
  const uint64_t pieces = atomic_pieces(op);
  if (pieces < 2) {
    choice.fates[index] = Fate::kept;
    return;
  }
  std::vector<bool> keep(pieces, false);
  if (prefix) {
    const uint64_t n = 1 + rng() % (pieces - 1);
    for (uint64_t i = 0; i < n; ++i) keep[i] = true;
  } else {
    uint64_t kept = 0;
    for (uint64_t i = 0; i < pieces; ++i) kept += (keep[i] = rng() % 2 == 0);
    if (kept == 0) keep[rng() % pieces] = true;
    if (kept == pieces) keep[rng() % pieces] = false;
  }
  choice.fates[index] = Fate::torn;
  choice.sectors[index] = std::move(keep);
}

}  // namespace

CrashChoice choose_crash(const PendingState& pending, CrashStyle style, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t n = pending.log.size();
  CrashChoice choice;
  choice.fates.assign(n, Fate::lost);
  choice.sectors.assign(n, {});
  switch (style) {
    case CrashStyle::durable_only:
      break;
    case CrashStyle::everything:
      std::fill(choice.fates.begin(), choice.fates.end(), Fate::kept);
      break;
    case CrashStyle::random_subset:
      for (size_t i = 0; i < n; ++i) choice.fates[i] = rng() % 2 ? Fate::kept : Fate::lost;
      break;
    case CrashStyle::random_torn:
      for (size_t i = 0; i < n; ++i) {
        const unsigned r = rng() % 3;
        if (r == 0) choice.fates[i] = Fate::kept;
        else if (r == 1) tear(choice, i, pending.log[i], rng, false);
      }
      break;
    case CrashStyle::torn_prefix: {
      if (n == 0) break;
      const size_t point = rng() % n;
      for (size_t i = 0; i < point; ++i) choice.fates[i] = Fate::kept;
      tear(choice, point, pending.log[point], rng, true);
      break;
    }
    case CrashStyle::drop_one:
      std::fill(choice.fates.begin(), choice.fates.end(), Fate::kept);
      if (n) choice.fates[rng() % n] = Fate::lost;
      break;
  }
  // A fua operation was durable when it returned: no crash takes it back.
  for (size_t i = 0; i < n; ++i)
    if (pending.log[i].forced) choice.fates[i] = Fate::kept;
  return choice;
}

std::vector<uint8_t> crash_bytes(const PendingState& pending, const CrashChoice& choice) {
  std::vector<uint8_t> bytes = pending.durable;
  for (size_t i = 0; i < pending.log.size(); ++i) {
    switch (choice.fates[i]) {
      case Fate::lost: break;
      case Fate::kept: apply_logged(bytes, pending.log[i]); break;
      case Fate::torn: apply_logged(bytes, pending.log[i], &choice.sectors[i]); break;
    }
  }
  return bytes;
}

std::string describe(const PendingState& pending, const CrashChoice& choice, size_t max_entries) {
  std::string out = std::to_string(pending.durable.size()) + " durable bytes, " +
                    std::to_string(pending.log.size()) + " unflushed:";
  for (size_t i = 0; i < pending.log.size(); ++i) {
    if (i == max_entries) {
      out += " ...";
      break;
    }
    const LoggedOp& op = pending.log[i];
    out += " [#" + std::to_string(op.sequence) + " " + to_string(op.op) + " ";
    out += op.op == DeviceOp::resize ? "to " + std::to_string(op.length)
                                     : std::to_string(op.offset) + "+" + std::to_string(op.length);
    if (op.forced) out += " fua";
    switch (choice.fates[i]) {
      case Fate::lost: out += " lost]"; break;
      case Fate::kept: out += " kept]"; break;
      case Fate::torn: {
        size_t kept = 0;
        for (bool b : choice.sectors[i]) kept += b;
        out += " torn " + std::to_string(kept) + "/" + std::to_string(choice.sectors[i].size()) + "]";
        break;
      }
    }
  }
  return out;
}

std::shared_ptr<MemoryDevice> memory_device_of(const std::vector<uint8_t>& bytes) {
  auto device = std::make_shared<MemoryDevice>(bytes.size());
  // Chunk by chunk, skipping zeroes, so the copy stays as sparse as the bytes.
  constexpr size_t kChunk = MemoryDevice::kChunkSize;
  for (size_t at = 0; at < bytes.size(); at += kChunk) {
    const size_t n = std::min(kChunk, bytes.size() - at);
    ConstByteSpan piece(bytes.data() + at, n);
    if (!is_all_zero(piece)) (void)device->write(at, piece);
  }
  return device;
}

}  // namespace qcowkit::testing
