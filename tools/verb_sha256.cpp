// qcowkit sha256: the SHA-256 of an image's virtual contents (what a guest
// would read from byte 0 to the end), printed as sha256sum does. Equal for a
// raw file and any qcow2 image holding the same bytes.
#include <cstdio>
#include <vector>

#include "cli_common.hpp"
#include "image_open.hpp"
#include "progress_bar.hpp"
#include "qcowkit/sha256.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit sha256 [-f raw|qcow2] [-p] [--backing-chain] IMAGE...\n"
    "\n"
    "Prints 'DIGEST  IMAGE' for each image, DIGEST being the SHA-256 of its\n"
    "virtual contents. Holes are hashed as the zeroes they read as, without\n"
    "reading them.\n";

constexpr uint64_t kChunk = 4u << 20;

Result<Sha256::Digest> hash_device(BlockDevice& device, ProgressBar& progress) {
  Sha256 hash;
  const uint64_t size = device.info().size;
  std::vector<uint8_t> buffer(kChunk);
  const std::vector<uint8_t> zeroes(kChunk, 0);
  QK_TRY(for_each_extent(device, 0, size, [&](const Extent& e) -> Status {
    for (uint64_t pos = e.offset; pos < e.offset + e.length;) {
      uint64_t n = std::min<uint64_t>(e.offset + e.length - pos, kChunk);
      if (e.kind == ExtentKind::data) {
        QK_TRY(device.read(pos, ByteSpan(buffer.data(), n)));
        hash.update(ConstByteSpan(buffer.data(), n));
      } else {
        hash.update(ConstByteSpan(zeroes.data(), n));
      }
      pos += n;
      progress.update(pos, size);
    }
    return {};
  }));
  return hash.finish();
}

}  // namespace

int run_sha256(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("sha256", kHelp, raw_args,
                              {{'f', nullptr, true}, {'p', nullptr, false},
                               {0, "backing-chain", false}},
                              status);
  if (!args) return status;
  if (args->positionals.empty()) return usage_error("sha256", "expected at least one IMAGE");
  ImageOpenOptions options;
  options.contents_needed = true;
  options.follow_backing = args->has("backing-chain");
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
