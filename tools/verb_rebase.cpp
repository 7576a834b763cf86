// qcowkit rebase: give a qcow2 image another backing file, as `qemu-img
// rebase` does. Safe mode (the default) keeps what the guest sees: every
// cluster the image does not allocate itself and where the old and the new
// backing file differ gets the old contents copied into the image, durably,
// before the header names the new file. -u (unsafe) only rewrites the
// header's backing name and format. -b "" makes the image standalone.
#include "backing_access.hpp"
#include "qcowkit/chain_ops.hpp"
#include "cli_common.hpp"
#include "image_open.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit rebase [-q] [-u] [-f qcow2] [--backing-chain] -b NEW [-F raw|qcow2] IMAGE\n"
    "\n"
    "Makes NEW the backing file of the qcow2 image IMAGE (NEW as written is\n"
    "recorded; a relative name is relative to IMAGE's folder). -b \"\" makes\n"
    "IMAGE standalone.\n"
    "  -b NEW           the new backing file name\n"
    "  -F FMT           its format; required unless NEW is \"\", as qemu-img asks\n"
    "  -u               unsafe: rewrite the header only (NEW is not opened)\n"
    "  -f qcow2         IMAGE's format\n"
    "  -q               quiet\n"
    "  -p, -t, -T       accepted for qemu-img compatibility; they change nothing\n"
    "  --backing-chain  follow backing names anywhere (otherwise only files in\n"
    "                   the image's own folder)\n"
    "\n"
    "Safe mode reads IMAGE through its old backing chain and NEW through its\n"
    "own, and copies into IMAGE every cluster it does not allocate where the\n"
    "two differ (NEW reads as zeroes past its end), so IMAGE reads the same\n"
    "before and after. The copy is durable before the header changes, and\n"
    "the header changes in one write.\n";

}  // namespace

int run_rebase(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("rebase", kHelp, raw_args,
                              {{'b', nullptr, true},
                               {'F', nullptr, true},
                               {'u', nullptr, false},
                               {'f', nullptr, true},
                               {'q', nullptr, false},
                               {'p', nullptr, false},
                               {'t', nullptr, true},
                               {'T', nullptr, true},
                               {0, "backing-chain", false}},
                              status);
  if (!args) return status;
  if (!args->has("b")) return usage_error("rebase", "must specify backing file (-b) or use -b \"\"");
  if (args->positionals.size() != 1) return usage_error("rebase", "expected one IMAGE");
  if (args->has("force-share"))
    return usage_error("rebase", "-U (force-share) cannot be used: rebase needs the image's write lock");
  const std::string& path = args->positionals[0];
  const std::string new_name = *args->last("b");
  std::string new_format;
  if (auto f = args->last("F")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("rebase", name.error().message);
    new_format = *name;
  }
  if (!new_name.empty() && new_format.empty())
    return report_error("rebase", make_error(EINVAL, "could not change the backing file to '" + new_name +
                                                         "': backing format must be specified (-F)"));
  const bool unsafe = args->has("u");

  qcowkit::ImageOpenOptions o;
  o.writable = true;
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("rebase", name.error().message);
    o.format = *name;
  }
  // Safe mode reads through the old chain, so it must open it all.
  o.backing = unsafe ? BackingPolicy::refuse : chain_policy(*args);
  o.backing_required = !unsafe;
  o.refusal_hint = kChainHint;
  auto image = open_named_image(posix_host(), path, o);
  if (!image.ok()) return report_error("rebase", image.error());
  if (!image->qcow2) return report_error("rebase", make_error(ENOTSUP, path + ": only qcow2 images have a backing file"));
  Qcow2Image& qcow2 = *image->qcow2;

  std::optional<OpenedImage> fresh;
  Status st;
  if (!unsafe && !new_name.empty()) {
    // The new file is named by the user, so it is opened as given (relative
    // to the image); its own backing chain only under the policy.
    qcowkit::ImageOpenOptions no;
    no.format = new_format;
    no.backing = chain_policy(*args);
    no.backing_required = true;
    no.refusal_hint = kChainHint;
    auto opened = open_named_image(posix_host(), posix_host().resolve(path, new_name), no);
    if (!opened.ok()) {
      (void)image->close();
      return report_error("rebase", with_context(opened.error(), "could not open new backing file '" + new_name + "'"));
    }
    fresh = std::move(opened).value();
  }
  if (!unsafe) {
    st = keep_contents_for_new_backing(qcow2, fresh ? fresh->device.get() : nullptr);
  }
  if (st.ok()) st = qcow2.set_backing_file(new_name, new_format, fresh ? fresh->device : nullptr);
  Status closed = image->close();
  if (st.ok()) st = closed;
  if (fresh) (void)fresh->close();
  if (!st.ok()) return report_error("rebase", with_context(st.error(), path));
  return 0;
}

}  // namespace qcowkit::cli
