// Writing a qcow2 image as a stream: every byte of the new image goes out
// once, in file order, to a forward-only ByteSink (a pipe, an HTTP upload, a
// browser download being produced). No seek, no byte written twice, so
// `qcowkit convert -O qcow2 SRC -` can write to standard output, which
// qemu-img cannot.
//
// Layout (qcow2 allows any order of clusters; only the header must be
// first), chosen before the first byte goes out:
//
//   header | refcount table | refcount blocks | L1 | L2 tables | data
//
// Data clusters follow in guest order; compressed clusters are packed byte
// after byte (as QEMU packs them), an uncompressed cluster starts on a
// cluster boundary. Ranges that read as zeroes are holes: unallocated, so
// they read as zeroes (there is no backing file), in compat 0.10 and 1.1.
//
// Two passes over the source. The metadata comes first, so the writer must
// know, before writing anything, which clusters hold data and (compressed)
// how many bytes each takes:
//  1. the scan: the source's extents are walked (holes and zero extents are
//     never read), every mapped cluster is read and checked for zeroes, and
//     compressed when asked, keeping only its size;
//  2. the layout is computed, the metadata written, then the data: first
//     what the scan kept (options.cache_bytes: the stored bytes of the
//     first clusters), then the rest of the source read again and every
//     data cluster written (compressed again: the codecs are deterministic,
//     so each cluster packs to the same bytes; a source that changed
//     between the passes so that a cluster turns zero or not, or packs to
//     another size, ends the stream with EIO; other changes are copied as
//     the second pass reads them, the image staying consistent).
// Both passes run on the copy engine (reads and compression in parallel on
// the core's Executor, commits in guest order). The source must therefore be
// readable twice: a pipe is not (convert refuses stdin -> qcow2 on stdout).
//
// Memory: the copy engine's bound ((workers + queue) x 1 MiB chunks), one
// cluster for the metadata being written, the L1 table (at most 32 MiB, as
// QEMU allows), plus 8 bytes per cluster that holds data (128 KiB per GiB
// of data at 64 KiB clusters), plus at most options.cache_bytes of the
// scan's output kept to spare the second pass; never anything in
// proportion to the virtual size a source claims.
//
// Example (the browser's download; any sink works the same way):
//
//   class Download : public ByteSink {
//    public:
//     Status write(ConstByteSpan bytes) override {
//       return send_to_browser(bytes);  // or fwrite, write(2): FdByteSink
//     }
//   };
//
//   Status stream_image(BlockDevice& source) {
//     Download out;
//     Qcow2StreamOptions options;
//     options.layout.cluster_size = 65536;
//     options.compress = true;
//     auto writer = Qcow2StreamWriter::create(source, out, options);
//     if (!writer.ok()) return writer.error();
//     // Natively: return (*writer)->run(). Without threads (a browser
//     // worker), a bounded share of the work at a time:
//     for (;;) {
//       auto p = (*writer)->step(8 << 20);  // about 8 MiB of the source
//       if (!p.ok()) return p.error();
//       report(p->done, p->total);
//       if (p->finished) return {};
//     }
//   }
//
// (tests/unit/docs/test_header_examples.cpp compiles and runs this.)
//
// Thread safety: one Qcow2StreamWriter is driven by one thread (run() or
// step(), not both); cancel() may come from any thread. The sink's write()
// is called from one thread at a time, in file order. The writer holds
// references to the source and the sink, which must outlive it.
#pragma once

#include <cstdint>
#include <memory>

#include "qcowkit/block_device.hpp"
#include "qcowkit/block_ops.hpp"
#include "qcowkit/byte_sink.hpp"
#include "qcowkit/codec.hpp"
#include "qcowkit/copy_engine.hpp"
#include "qcowkit/qcow2.hpp"

namespace qcowkit {

struct Qcow2StreamOptions {
  // cluster_size, version (compat), refcount_bits, lazy_refcounts and
  // compression_type are used. `size` is ignored: the image is the source's
  // size, rounded up to whole 512-byte sectors. Extended L2, preallocation
  // and backing files are refused (ENOTSUP).
  Qcow2CreateOptions layout;
  // Store clusters compressed (with layout.compression_type); a cluster
  // that does not shrink is stored plainly.
  bool compress = false;
  // False: every cluster of the source is stored, zeroes and holes too
  // (qemu-img convert -S 0). True: clusters that read as zeroes are holes.
  bool detect_zeroes = true;
  // Bytes of the scan's output kept in memory for the data pass: the stored
  // (compressed) bytes of the first data clusters, in guest order, as long
  // as they fit. Those clusters are neither read nor compressed again; an
  // image whose stored data fits entirely is read and compressed once.
  // 0: nothing kept (memory as below).
  uint64_t cache_bytes = 0;
  // Chunks read and compressed at once (the copy engine's workers); 0: 4.
  unsigned workers = 0;
  const CodecSet* codecs = nullptr;  // nullptr: builtin_codecs()
  // (done, total) over both passes; total is twice the source size.
  ProgressFn progress;
};

class Qcow2StreamWriter {
 public:
  // Checks the options (EINVAL, ENOTSUP) and the source's size (EFBIG when
  // its tables would pass QEMU's limits); writes nothing yet.
  static Result<std::unique_ptr<Qcow2StreamWriter>> create(BlockDevice& source, ByteSink& sink,
                                                           const Qcow2StreamOptions& options);
  ~Qcow2StreamWriter();

  // Both passes to the end, natively on the Executor's threads. On failure
  // the sink holds a partial image (a consumer must discard it).
  Status run();

  // Cooperative (no threads): about `budget` bytes of the source's work,
  // then returns. `done`/`total` count both passes; `finished` once the
  // last byte is written. The metadata goes out in one step, between the
  // passes. Do not mix with run().
  Result<CopyProgress> step(uint64_t budget);

  // From any thread: run() / step() stop soon with ECANCELED.
  void cancel();

  // Bytes handed to the sink so far; the image's final size once finished.
  uint64_t bytes_written() const;

  struct State;

 private:
  explicit Qcow2StreamWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace qcowkit
