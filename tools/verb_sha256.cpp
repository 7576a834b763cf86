// qcowkit sha256: the SHA-256 of an image's virtual contents (what a guest
// would read from byte 0 to the end), printed as sha256sum does. Equal for a
// raw file and any qcow2 image holding the same bytes.
#include <cstdio>
#include <vector>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "progress_bar.hpp"
#include "qcowkit/copy_engine.hpp"
#include "qcowkit/sha256.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit sha256 [-f raw|qcow2] [-p] [-U] [--backing-chain] IMAGE...\n"
    "\n"
    "Prints 'DIGEST  IMAGE' for each image, DIGEST being the SHA-256 of its\n"
    "virtual contents. Holes are hashed as the zeroes they read as, without\n"
    "reading them. -U (--force-share) reads without taking the images' locks.\n";

constexpr uint64_t kChunk = 4u << 20;

// Hashes chunks as the copy engine commits them, in order; holes arrive
// unread and are hashed as the zeroes they read as.
class HashSink : public CopySink {
 public:
  Result<Flow> commit(CopyChunk& chunk) override {
    if (chunk.mapped) {
      hash_.update(ConstByteSpan(chunk.data.data(), chunk.length));
      return Flow::proceed;
    }
    static const std::vector<uint8_t> zeroes(kChunk, 0);
    for (uint64_t left = chunk.length; left > 0;) {
      const uint64_t n = std::min<uint64_t>(left, kChunk);
      hash_.update(ConstByteSpan(zeroes.data(), n));
      left -= n;
    }
    return Flow::proceed;
  }
  Sha256::Digest digest() { return hash_.finish(); }

 private:
  Sha256 hash_;
};

Result<Sha256::Digest> hash_device(BlockDevice& device, ProgressBar& progress) {
  HashSink sink;
  CopyEngineOptions options;
  options.chunk_size = kChunk;
  options.deliver_unmapped = true;
  options.operation = "sha256";
  if (progress.active())
    options.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };
  QK_ASSIGN_OR_RETURN(auto engine, CopyEngine::create(device, sink, options));
  QK_TRY(engine->run());
  return sink.digest();
}

}  // namespace

int run_sha256(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("sha256", kHelp, raw_args,
                              {{'f', nullptr, true}, {'p', nullptr, false},
                               {0, "backing-chain", false}, {'U', "force-share", false}},
                              status);
  if (!args) return status;
  if (args->positionals.empty()) return usage_error("sha256", "expected at least one IMAGE");
  ImageOpenOptions options;
  options.contents_needed = true;
  options.follow_backing = args->has("backing-chain");
  options.lock = !args->has("force-share");
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("sha256", name.error().message);
    options.format = *name;
  }
  int exit_status = 0;
  for (const auto& path : args->positionals) {
    auto image = open_image(path, options);
    if (!image.ok()) {
      exit_status = report_error("sha256", image.error());
      continue;
    }
    ProgressBar progress(args->has("p"));
    auto digest = hash_device(*image->device, progress);
    progress.finish();
    if (!digest.ok()) {
      exit_status = report_error("sha256", with_context(digest.error(), path));
      continue;
    }
    std::printf("%s  %s\n", Sha256::to_hex(*digest).c_str(), path.c_str());
  }
  return exit_status;
}

}  // namespace qcowkit::cli
