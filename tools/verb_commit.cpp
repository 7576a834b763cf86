// qcowkit commit: write what a qcow2 image allocates itself into its backing
// file, then (unless -d) empty the image so that it reads through to the
// backing file again, as `qemu-img commit` does. A backing file smaller than
// the image grows to its size first. With -b, the base may lie deeper in the
// chain: what every layer above it allocates goes in, lowest layer first so
// that upper layers win.
//
// Each layer above the base is opened on its own (never through its backing
// file: its own clusters are all commit reads from it), and the base is
// opened for writing once, so no file is open twice and our own locks never
// conflict.
#include <cstdio>

#include "backing_access.hpp"
#include "qcowkit/chain_ops.hpp"
#include "cli_common.hpp"
#include "image_open.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit commit [-q] [-d] [-f qcow2] [-b BASE] [--backing-chain] IMAGE\n"
    "\n"
    "Copies the data and zeroes the qcow2 image IMAGE holds itself into its\n"
    "backing file, then empties IMAGE (it reads the same, now from the\n"
    "backing file).\n"
    "  -d               keep IMAGE's contents (do not empty it)\n"
    "  -b BASE          the image to commit into: any image of IMAGE's backing\n"
    "                   chain (implies -d, as with qemu-img)\n"
    "  -f qcow2         IMAGE's format\n"
    "  -q               quiet\n"
    "  -p, -t, -r       accepted for qemu-img compatibility; they change nothing\n"
    "  --backing-chain  follow backing names anywhere (otherwise only files in\n"
    "                   the image's own folder)\n"
    "\n"
    "Both files are locked for writing while this runs. The backing file is\n"
    "flushed before IMAGE is emptied, so a power cut never loses data: at\n"
    "worst IMAGE still holds what was already committed.\n";

}  // namespace

int run_commit(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("commit", kHelp, raw_args,
                              {{'b', nullptr, true},
                               {'d', nullptr, false},
                               {'f', nullptr, true},
                               {'q', nullptr, false},
                               {'p', nullptr, false},
                               {'t', nullptr, true},
                               {'r', nullptr, true},
                               {0, "backing-chain", false}},
                              status);
  if (!args) return status;
  if (args->positionals.size() != 1) return usage_error("commit", "expected one IMAGE");
  if (args->has("force-share"))
    return usage_error("commit", "-U (force-share) cannot be used: commit needs the images' write locks");
  const std::string& path = args->positionals[0];
  qcowkit::ImageOpenOptions o;
  o.writable = true;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("commit", name.error().message);
    o.format = *name;
  }
  // The image's own clusters are all commit reads from it: its backing file
  // is opened separately, for writing.
  auto image = open_named_image(posix_host(), path, o);
  if (!image.ok()) return report_error("commit", image.error());
  if (!image->qcow2)
    return report_error("commit", make_error(ENOTSUP, path + ": only qcow2 images have a backing file"));
  Qcow2Image& top = *image->qcow2;
  std::optional<std::string> wanted;
  if (auto b = args->last("b")) {
    auto canonical = posix_host().canonical(*b);
    if (!canonical.ok()) return report_error("commit", with_context(canonical.error(), "-b " + *b));
    wanted = *canonical;
  }
  const bool drop = !args->has("d") && !wanted;

  // Walk down the chain to the base: the layers above it, opened one by one.
  std::vector<OpenedImage> layers;  // below the top, above the base
  std::string base_path, base_format;
  for (Qcow2Image* layer = &top; ;) {
    const Qcow2Details details = layer->details();
    const std::string& named_by = layers.empty() ? path : layers.back().path;
    if (details.backing_file.empty())
      return report_error("commit", make_error(EINVAL, wanted ? "'" + *args->last("b") + "' is not in the backing chain of " + path
                                                              : path + ": image does not have a backing file"));
    auto below = resolve_backing_file(posix_host(), named_by, details.backing_file, chain_policy(*args));
    if (!below.ok()) return report_error("commit", with_context(below.error(), kChainHint));
    auto canonical = posix_host().canonical(*below);
    if (!wanted || (canonical.ok() && *canonical == *wanted)) {
      base_path = *below;
      base_format = details.backing_format;
      break;
    }
    if (layers.size() + 2 > 16)
      return report_error("commit", make_error(ELOOP, path + ": the backing chain is deeper than 16 images"));
    qcowkit::ImageOpenOptions lo;
    if (!details.backing_format.empty()) lo.format = details.backing_format;
    auto opened = open_named_image(posix_host(), *below, lo);
    if (!opened.ok()) return report_error("commit", opened.error());
    if (!opened->qcow2)
      return report_error("commit", make_error(EINVAL, "'" + *args->last("b") + "' is not in the backing chain of " + path +
                                                           " (it ends at the raw image " + *below + ")"));
    layers.push_back(std::move(opened).value());
    layer = layers.back().qcow2.get();
  }

  qcowkit::ImageOpenOptions bo;
  bo.writable = true;
  if (!base_format.empty()) bo.format = base_format;
  // Writes to part of a cluster of a qcow2 base read the rest from its own
  // backing file: open that chain too, under the same policy.
  bo.backing = chain_policy(*args);
  bo.backing_required = true;
  bo.refusal_hint = kChainHint;
  auto base = open_named_image(posix_host(), base_path, bo);
  if (!base.ok()) return report_error("commit", with_context(base.error(), "could not open the backing file"));

  Status st;
  const uint64_t size = top.info().size;
  if (base->device->info().size < size)
    st = base->qcow2 ? base->qcow2->resize(size, false) : base->device->resize(size);
  // Lowest layer first: what an upper layer allocates overwrites it.
  std::vector<Qcow2Image*> order;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) order.push_back(it->qcow2.get());
  order.push_back(&top);
  for (Qcow2Image* layer : order) {
    if (!st.ok()) break;
    st = commit_layer(*layer, *base->device, size);
  }
  if (st.ok()) st = base->device->flush();
  for (OpenedImage& layer : layers) (void)layer.close();
  Status closed = base->close();
  if (st.ok()) st = closed;
  if (st.ok() && drop) st = top.discard(0, size);
  closed = image->close();
  if (st.ok()) st = closed;
  if (!st.ok()) return report_error("commit", with_context(st.error(), "could not commit " + path));
  if (!args->has("q")) std::printf("Image committed.\n");
  return 0;
}

}  // namespace qcowkit::cli
