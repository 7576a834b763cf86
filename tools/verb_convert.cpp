// qcowkit convert: copies an image into a new raw or qcow2 file (sparse,
// optionally compressed in parallel), with qemu-img convert's options, on
// the core's copy engine; or streams qcow2 / vmdk streamOptimized to
// standard output, or reads raw from standard input.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "args.hpp"
#include "cli_common.hpp"
#include "copy_pipeline.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "image_open.hpp"
#include "progress_bar.hpp"
#include "qcowkit/formats.hpp"
#include "qcowkit/option_values.hpp"
#include "qcowkit/qcow2_stream.hpp"
#include "qcowkit/vmdk.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit convert [-f FORMAT] [-O FORMAT] [-c] [-o OPTIONS] [-S BYTES]\n"
    "                       [-m THREADS] [-t CACHE] [-W] [-p] [-q] [-U] [--backing-chain]\n"
    "                       [--bitmaps [--skip-broken-bitmaps]] IN OUT\n"
    "\n"
    "Copies the virtual contents of IN into a new file OUT (which must not exist).\n"
    "OUT '-' streams the image to standard output (a pipe: no seek, one pass over\n"
    "the output): -O qcow2 (any options, -c too; IN is read twice) and -O vmdk\n"
    "-o subformat=streamOptimized. IN '-' with -f raw reads a raw image from\n"
    "standard input into a file OUT of format raw or qcow2.\n"
    "  -f, -O   input and output formats: raw, qcow2, vpc, vdi, vmdk, vhdx, and qcow as\n"
    "           input only (-O default raw,"
    " as qemu-img; the input's is found by content unless given)\n"
    "  -c       store qcow2 clusters compressed (zlib; -o compression_type=zstd),\n"
    "           compressing in parallel\n"
    "  -o       creation options of the output format, as for 'qcowkit create'\n"
    "           (vpc: subformat=dynamic|fixed,force_size=on|off;\n"
    "           vdi: static=on|off;\n"
    "           vmdk: subformat=monolithicSparse|streamOptimized;\n"
    "           vhdx: subformat=dynamic|fixed,block_size=SIZE,log_size=SIZE)\n"
    "  -S       zero runs of at least BYTES are left unallocated (default 4K);\n"
    "           -S 0 writes every byte\n"
    "  -m       requests in flight, run on the core's executor (default 4)\n"
    "  -p       progress bar on a terminal\n"
    "  --backing-chain  read through IN's backing files (never opened otherwise)\n"
    "  -t       output cache mode: unsafe (default, as qemu-img: nothing is flushed\n"
    "           to the disk) or writeback, writethrough, none, directsync (all\n"
    "           flush the finished image to the disk)\n"
    "  -W       allow out-of-order writes: faster, but a qcow2 output's clusters may\n"
    "           be laid out less sequentially (compressed clusters are always stored\n"
    "           in order; raw outputs take any order anyway)\n"
    "  -U       (--force-share) read IN without taking its lock\n"
    "  --bitmaps  copy IN's persistent bitmaps (qcow2 to qcow2 v3): names,\n"
    "           granularities, enabled or disabled, and their dirty bits\n"
    "  --skip-broken-bitmaps  with --bitmaps: leave out bitmaps marked in use\n"
    "           (inconsistent) instead of failing\n"
    "  -T       accepted for qemu-img compatibility; it changes nothing\n";

struct Target {
  std::shared_ptr<FileDevice> file;
  std::shared_ptr<BlockDevice> device;
  std::shared_ptr<Qcow2Image> qcow2;
};

Result<Target> create_target(const std::string& path, const std::string& format,
                             Qcow2CreateOptions create, const FormatOptions& other_options,
                             uint64_t size, bool durable) {
  FileOpenOptions file_options;
  file_options.create = true;
  file_options.exclusive = true;
  file_options.skip_sync = !durable;
  auto file = FileDevice::open(path, file_options);
  if (!file.ok()) {
    if (file.error().code == EEXIST)
      return make_error(EEXIST, "target '" + path + "' exists; remove it first");
    return with_context(std::move(file).error(), "cannot create '" + path + "'");
  }
  Target target;
  target.file = std::shared_ptr<FileDevice>(std::move(file).value());
  if (format == "raw") {
    QK_TRY(target.file->resize(size));
    target.device = target.file;
    return target;
  }
  if (const ImageFormat* other = find_image_format(format)) {
    const std::string name = path.substr(path.find_last_of('/') + 1);
    QK_ASSIGN_OR_RETURN(auto image,
                        other->create(target.file, (size + 511) / 512 * 512, other_options, name));
    target.device = std::shared_ptr<BlockDevice>(std::move(image));
    return target;
  }
  create.size = (size + 511) / 512 * 512;  // qcow2 sizes are whole sectors
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::create(target.file, create));
  target.qcow2 = std::shared_ptr<Qcow2Image>(std::move(image));
  target.device = target.qcow2;
  return target;
}

// --bitmaps: the source's bitmaps, as qemu-img picks them (in-use ones are
// an error, or left out with --skip-broken-bitmaps).
Result<std::vector<Qcow2Bitmap>> bitmaps_to_copy(const OpenedImage& source, bool skip_broken) {
  if (!source.qcow2) return make_error(ENOTSUP, source.path + ": source lacks bitmap support (it is not qcow2)");
  std::vector<Qcow2Bitmap> out;
  for (const Qcow2Bitmap& b : source.qcow2->details().bitmaps) {
    if (b.flags & 1) {
      if (skip_broken) {
        std::fprintf(stderr, "qcowkit convert: warning: skipping inconsistent bitmap '%s'\n", b.name.c_str());
        continue;
      }
      return make_error(EINVAL, "cannot copy inconsistent bitmap '" + b.name +
                                    "' (try --skip-broken-bitmaps, or remove it with 'qcowkit bitmap --remove')");
    }
    out.push_back(b);
  }
  return out;
}

// Each bitmap is added to the finished target with its granularity and
// state, then its dirty bits are merged in.
Status copy_bitmaps(Qcow2Image& source, Qcow2Image& target, const std::vector<Qcow2Bitmap>& bitmaps) {
  for (const Qcow2Bitmap& b : bitmaps) {
    QK_ASSIGN_OR_RETURN(std::vector<Extent> dirty, source.bitmap_ranges(b.name));
    QK_TRY(target.add_bitmap(b.name, uint64_t{1} << b.granularity_bits, (b.flags & 2) != 0));
    bool any = false;
    for (const Extent& e : dirty) any |= e.kind == ExtentKind::data;
    if (any) QK_TRY(target.merge_bitmap_ranges(b.name, dirty, target.info().size));
  }
  return {};
}

// A streamOptimized VMDK's grains are compressed in the engine's prepare
// stage, in parallel; the writer only appends them, in order.
void compress_grains_in_parallel(VmdkStreamWriter& writer, CopyPipelineOptions& copy) {
  const Codec* zlib = builtin_codecs().zlib_stream;
  if (!zlib) return;  // the writer compresses them itself
  copy.granule = VmdkStreamWriter::kGrainBytes;
  copy.compress_cluster = [zlib](ConstByteSpan grain) { return zlib->compress(grain, 2 * grain.size()); };
  copy.store_packed = [&writer](uint64_t offset, ConstByteSpan packed) {
    return writer.store_compressed_grain(offset, packed);
  };
}

// A streamOptimized VMDK to a forward-only sink, through the usual pipeline
// (in order: the writer takes nothing else).
Status stream_vmdk(BlockDevice& source, ByteSink& out, CopyPipelineOptions copy, ProgressFn report) {
  VmdkCreateOptions options;
  options.size = source.info().size;
  options.stream_optimized = true;
  QK_ASSIGN_OR_RETURN(auto image, create_vmdk_stream(out, options));
  copy.in_order = true;
  copy.progress = std::move(report);
  compress_grains_in_parallel(*image, copy);
  QK_TRY(run_copy_pipeline(source, *image, copy));
  return image->close();
}

// OUT '-': the image goes to standard output as a stream (no seek).
int convert_to_stdout(const std::string& in_path, const ImageOpenOptions& in_options,
                      const std::string& out_format, const Qcow2CreateOptions& create,
                      const FormatOptions& other_options, bool compress,
                      const CopyPipelineOptions& copy, bool progress_wanted) {
  const ImageFormat* other = find_image_format(out_format);
  const bool vmdk_stream = other && other->writes_in_order && other->writes_in_order(other_options);
  if (out_format != "qcow2" && !vmdk_stream)
    return usage_error("convert", "'-' (standard output) takes -O qcow2 or -O vmdk -o subformat=streamOptimized; " +
                                      out_format + " output needs a seekable file");
  if (in_path == "-")
    return usage_error("convert", "IN and OUT cannot both be '-': a streamed qcow2 needs its source "
                                  "read twice, a vmdk its size first (IN must be a file)");
  if (::isatty(STDOUT_FILENO))
    return usage_error("convert", "standard output is a terminal; redirect it (> FILE or | COMMAND)");
  auto source = open_image(in_path, in_options);
  if (!source.ok()) return report_error("convert", source.error());
  // A reader that goes away (EPIPE) is an error to report, not a signal to die of.
  std::signal(SIGPIPE, SIG_IGN);
  FdByteSink out(STDOUT_FILENO);
  ProgressBar progress(progress_wanted);
  ProgressFn report;
  if (progress.active()) report = [&](uint64_t done, uint64_t total) { progress.update(done, total); };
  Status st;
  if (vmdk_stream) {
    st = stream_vmdk(*source->device, out, copy, report);
  } else {
    Qcow2StreamOptions options;
    options.layout = create;
    options.compress = compress;
    options.detect_zeroes = copy.min_sparse != 0;
    options.workers = copy.threads;
    // With -c, up to 256 MiB of the scan's compressed output is kept: an
    // image that packs into that is compressed once. (Plain clusters are
    // cheap to read again.)
    options.cache_bytes = compress ? 256u << 20 : 0;
    options.progress = report;
    auto writer = Qcow2StreamWriter::create(*source->device, out, options);
    st = writer.ok() ? (*writer)->run() : Status(writer.error());
  }
  progress.finish();
  if (!st.ok()) return report_error("convert", with_context(st.error(), in_path + " -> standard output"));
  return 0;
}

// IN '-': a raw image from standard input, into a new raw or qcow2 file
// that grows as the input arrives (qemu-img cannot read a pipe at all).
int convert_from_stdin(const std::string& out_path, const std::string& out_format,
                       const Qcow2CreateOptions& create, bool compress, const CopyPipelineOptions& copy,
                       bool durable, bool progress_wanted) {
  if (::isatty(STDIN_FILENO))
    return usage_error("convert", "standard input is a terminal; pipe an image into it");
  auto target = create_target(out_path, out_format, create, {}, 0, durable);
  if (!target.ok()) {
    if (target.error().code != EEXIST) ::unlink(out_path.c_str());
    return report_error("convert", target.error());
  }
  StreamInOptions in;
  in.min_sparse = copy.min_sparse;
  in.granule = target->qcow2 ? target->qcow2->cluster_size() : 65536;
  in.size_alignment = target->qcow2 ? 512 : 1;  // qcow2 sizes are whole sectors
  if (compress) {
    Qcow2Image* image = target->qcow2.get();
    in.store_cluster = [image](uint64_t offset, ConstByteSpan cluster) {
      return image->write_compressed(offset, cluster);
    };
  }
  ProgressBar progress(progress_wanted);
  // The total is unknown until the end: the bar shows the bytes so far.
  if (progress.active()) in.progress = [&](uint64_t done) { progress.update(done, done); };
  auto copied = copy_from_fd(STDIN_FILENO, *target->device, in);
  Status st = copied.ok() ? Status() : Status(copied.error());
  if (st.ok() && *copied == 0 && target->qcow2) st = target->qcow2->resize(0, true);  // an empty input
  if (st.ok()) st = target->device->flush();
  if (st.ok()) st = target->device->close();
  progress.finish();
  if (!st.ok()) {
    ::unlink(out_path.c_str());
    return report_error("convert", with_context(st.error(), "standard input -> " + out_path));
  }
  return 0;
}

}  // namespace

int run_convert(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args(
      "convert", kHelp, raw_args,
      {{'f', nullptr, true}, {'O', nullptr, true}, {'c', nullptr, false}, {'o', nullptr, true},
       {'S', nullptr, true}, {'m', nullptr, true}, {'p', nullptr, false}, {'q', nullptr, false},
       {0, "backing-chain", false},
       {'t', nullptr, true}, {'W', nullptr, false},
       // Accepted so qemu-img command lines run unchanged: the source cache
       // mode means nothing here.
       {'T', nullptr, true}, {'U', "force-share", false},
       {0, "bitmaps", false}, {0, "skip-broken-bitmaps", false}},
      status);
  if (!args) return status;
  if (args->positionals.size() != 2) return usage_error("convert", "expected IN and OUT");
  const std::string& in_path = args->positionals[0];
  const std::string& out_path = args->positionals[1];

  ImageOpenOptions in_options;
  in_options.contents_needed = true;
  in_options.follow_backing = args->has("backing-chain");
  in_options.lock = !args->has("force-share");
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("convert", name.error().message);
    in_options.format = *name;
  }
  std::string out_format = "raw";
  if (auto o = args->last("O")) {
    auto name = parse_format_name(*o);
    if (!name.ok()) return usage_error("convert", name.error().message);
    out_format = *name;
  }
  const bool compress = args->has("c");
  if (compress && out_format != "qcow2")
    return usage_error("convert", "-c needs a qcow2 output (-O qcow2)");
  auto kv = parse_key_values(args->all("o"));
  if (!kv.ok()) return usage_error("convert", kv.error().message);
  Qcow2CreateOptions create;
  FormatOptions other_options;
  if (out_format == "raw" && !kv->empty())
    return usage_error("convert", "-o options do not apply to raw output");
  if (const ImageFormat* other = find_image_format(out_format)) {
    other_options = FormatOptions(kv->begin(), kv->end());
    if (auto checked = other->check_options(other_options); !checked.ok())
      return usage_error("convert", checked.error().message);
  } else if (auto applied = apply_qcow2_create_options(*kv, create); !applied.ok()) {
    return usage_error("convert", applied.error().message);
  }
  if (!create.backing_file.empty())
    return usage_error("convert", "convert writes a self-contained image; -o backing_file is not supported");
  const bool bitmaps = args->has("bitmaps");
  if (args->has("skip-broken-bitmaps") && !bitmaps)
    return usage_error("convert", "--skip-broken-bitmaps needs --bitmaps");
  if (bitmaps && (out_format != "qcow2" || create.version < 3))
    return report_error("convert", make_error(ENOTSUP, std::string("format driver '") + out_format +
                                                           "' does not support bitmaps" +
                                                           (out_format == "qcow2" ? " in v2 (compat=0.10) images" : "")));

  CopyPipelineOptions copy;
  if (auto s = args->last("S")) {
    auto bytes = parse_size(*s);
    if (!bytes.ok()) return usage_error("convert", bytes.error().message);
    copy.min_sparse = *bytes;
  }
  if (auto m = args->last("m")) {
    auto n = parse_size(*m);
    if (!n.ok() || *n == 0 || *n > 64) return usage_error("convert", "-m expects 1 to 64 threads");
    copy.threads = static_cast<unsigned>(*n);
  }

  // -t: as qemu-img, the output is not flushed to the disk unless asked
  // (a conversion cut short by a crash is redone anyway).
  const std::string cache = args->last("t").value_or("unsafe");
  if (cache != "unsafe" && cache != "writeback" && cache != "writethrough" && cache != "none" &&
      cache != "directsync")
    return usage_error("convert", "-t must be unsafe, writeback, writethrough, none or directsync");
  const bool durable = cache != "unsafe";

  if (out_path == "-") {
    if (bitmaps) return usage_error("convert", "--bitmaps cannot be streamed to standard output");
    return convert_to_stdout(in_path, in_options, out_format, create, other_options, compress, copy,
                             args->has("p") && !args->has("q"));
  }
  if (in_path == "-") {
    if (!in_options.format || *in_options.format != "raw")
      return usage_error("convert", "IN '-' (standard input) needs -f raw");
    if (out_format != "raw" && out_format != "qcow2")
      return usage_error("convert", "standard input can be converted to -O raw or -O qcow2 only (" +
                                        out_format + " needs the size before the data)");
    if (bitmaps) return usage_error("convert", "--bitmaps needs a qcow2 source");
    return convert_from_stdin(out_path, out_format, create, compress, copy, durable,
                              args->has("p") && !args->has("q"));
  }

  auto source = open_image(in_path, in_options);
  if (!source.ok()) return report_error("convert", source.error());
  const uint64_t size = source->device->info().size;
  std::vector<Qcow2Bitmap> to_copy;
  if (bitmaps) {
    auto chosen = bitmaps_to_copy(*source, args->has("skip-broken-bitmaps"));
    if (!chosen.ok()) return report_error("convert", chosen.error());
    to_copy = std::move(chosen).value();
  }

  auto target = create_target(out_path, out_format, create, other_options, size, durable);
  if (!target.ok()) {
    // Creation may have failed after the file appeared: do not leave it behind
    // (unless it was there before us).
    if (target.error().code != EEXIST) ::unlink(out_path.c_str());
    return report_error("convert", target.error());
  }

  ProgressBar progress(args->has("p") && !args->has("q"));
  if (progress.active())
    copy.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };
  copy.granule = target->qcow2 ? target->qcow2->cluster_size() : 65536;
  // In order by default, as qemu-img: an image's blocks are then laid out in
  // guest order. A raw file does not care.
  copy.in_order = out_format != "raw" && !args->has("W");
  // A streaming writer (vmdk streamOptimized) takes nothing else, -W or not.
  if (const ImageFormat* other = find_image_format(out_format);
      other && other->writes_in_order && other->writes_in_order(other_options))
    copy.in_order = true;
  if (auto* grains = dynamic_cast<VmdkStreamWriter*>(target->device.get())) compress_grains_in_parallel(*grains, copy);
  if (compress) {
    // Compress in the engine's prepare stage, in parallel, with the codec the image
    // records; the image only stores the packed clusters, in order.
    const Codec* codec = builtin_codecs().get(create.compression_type);
    if (!codec) {
      ::unlink(out_path.c_str());
      return report_error("convert", make_error(ENOTSUP, std::string("this build has no ") +
                                                             to_string(create.compression_type) +
                                                             " codec"));
    }
    const uint64_t cluster_size = copy.granule;
    copy.compress_cluster = [codec, cluster_size](ConstByteSpan cluster) {
      return codec->compress(cluster, cluster_size - 1);
    };
    Qcow2Image* image = target->qcow2.get();
    copy.store_packed = [image](uint64_t offset, ConstByteSpan packed) {
      return image->store_compressed(offset, packed);
    };
  }

  Status copied = run_copy_pipeline(*source->device, *target->device, copy);
  if (copied.ok() && !to_copy.empty()) copied = copy_bitmaps(*source->qcow2, *target->qcow2, to_copy);
  if (copied.ok()) copied = target->device->flush();
  if (copied.ok()) copied = target->device->close();
  progress.finish();
  if (!copied.ok()) {
    ::unlink(out_path.c_str());
    return report_error("convert", with_context(copied.error(), in_path + " -> " + out_path));
  }
  return 0;
}

}  // namespace qcowkit::cli
