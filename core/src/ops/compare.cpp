// compare: the copy engine walks the first device (counting the second's
// extents too, so ranges both report as zero or hole are not read); each
// chunk's prepare reads the second device and finds the first differing
// byte; commits come in order, so the first difference (or the first error)
// in device order is the answer.
#include <cstring>

#include "ops/engine_options.hpp"
#include "ops/op_support.hpp"
#include "qcowkit/block_ops.hpp"

namespace qcowkit {
namespace {

constexpr const char* kOp = "compare";

// Offset of the first differing byte of two equal-length buffers, if any.
std::optional<size_t> first_mismatch(const uint8_t* a, const uint8_t* b, size_t n) {
  if (std::memcmp(a, b, n) == 0) return std::nullopt;
  constexpr size_t kStep = 4096;  // narrow down with memcmp, then bytewise
  size_t pos = 0;
  while (pos + kStep < n && std::memcmp(a + pos, b + pos, kStep) == 0) pos += kStep;
  while (a[pos] == b[pos]) ++pos;
  return pos;
}

class CompareSink : public CopySink {
 public:
  explicit CompareSink(BlockDevice& other) : other_(other) {}

  Status prepare(CopyChunk& chunk) override {
    // Per call: prepare runs on several threads at once, and a buffer kept
    // per thread would outlive the comparison.
    std::vector<uint8_t> buffer;
    QK_TRY(ops::ensure_buffer(buffer, static_cast<size_t>(chunk.length), kOp));
    ByteSpan theirs(buffer.data(), chunk.length);
    if (auto st = other_.read(chunk.offset, theirs); !st.ok())
      return ops::failed_at(kOp, "read of the second device", chunk.offset, st.error());
    if (auto at = first_mismatch(chunk.data.data(), theirs.data(), chunk.length))
      chunk.found = chunk.offset + *at;
    return {};
  }

  Result<Flow> commit(CopyChunk& chunk) override {
    if (!chunk.found) return Flow::proceed;
    difference = chunk.found;
    return Flow::stop;
  }

  std::optional<uint64_t> difference;  // the first, once the engine has run

 private:
  BlockDevice& other_;
};

}  // namespace

Result<CompareResult> compare(BlockDevice& a, BlockDevice& b, const OpOptions& options) {
  const DeviceInfo ia = a.info(), ib = b.info();
  CompareResult result;
  result.a_size = ia.size;
  result.b_size = ib.size;
  if (ia.size != ib.size) {
    result.sizes_differ = true;
    return result;
  }
  QK_ASSIGN_OR_RETURN(CopyEngineOptions engine, ops::engine_options(options, ia, ib, kOp));
  engine.also_mapped = &b;
  engine.in_order = true;
  CompareSink sink(b);
  QK_TRY(ops::run_engine(a, sink, engine));
  result.first_difference = sink.difference;
  result.equal = !sink.difference;
  return result;
}

}  // namespace qcowkit
