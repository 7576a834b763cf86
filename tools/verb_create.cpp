// qcowkit create: a new raw or qcow2 image, options as qemu-img create.
#include <cstdio>

#include "cli_common.hpp"
#include "qcowkit/qcow2_options.hpp"
#include "image_open.hpp"
#include "qcowkit/formats.hpp"
#include "qcowkit/option_values.hpp"
#include "verbs.hpp"

namespace qcowkit::cli {
namespace {

const char kHelp[] =
    "usage: qcowkit create [-f FORMAT] [-o OPTIONS] [-b BACKING -F FMT] IMAGE SIZE\n"
    "\n"
    "Creates IMAGE (replacing an existing file, as qemu-img does) of SIZE bytes;\n"
    "suffixes K, M, G, T, P, E are powers of 1024. qcow2 OPTIONS, comma separated:\n"
    "  compat=0.10|1.1  cluster_size=512..2M  refcount_bits=1..64\n"
    "  lazy_refcounts=on|off  extended_l2=on|off  compression_type=zlib|zstd\n"
    "  preallocation=off|metadata|falloc|full  backing_file=NAME  backing_fmt=raw|qcow2\n"
    "The backing file is recorded in the header, never opened.\n"
    "FORMAT: qcow2 (default), raw, vpc (subformat=dynamic|fixed, force_size=on|off)\n"
    "vdi (static=on|off), vmdk (subformat=monolithicSparse|streamOptimized) or vhdx\n"
    "(subformat=dynamic|fixed, block_size=1M..256M, log_size, block_state_zero=on|off).\n";

Status create_raw(const std::string& path, uint64_t size) {
  FileOpenOptions options;
  options.create = true;
  options.truncate = true;
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, options));
  QK_TRY(file->resize(size));
  return file->close();
}

Status create_other(const ImageFormat& format, const std::string& path, uint64_t size,
                    const FormatOptions& options) {
  FileOpenOptions file_options;
  file_options.create = true;
  file_options.truncate = true;
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, file_options));
  std::shared_ptr<BlockDevice> shared(std::move(file));
  const std::string name = path.substr(path.find_last_of('/') + 1);
  QK_ASSIGN_OR_RETURN(auto image, format.create(shared, size, options, name));
  return image->close();
}

Status create_qcow2(const std::string& path, const Qcow2CreateOptions& create) {
  FileOpenOptions options;
  options.create = true;
  options.truncate = true;
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, options));
  std::shared_ptr<BlockDevice> shared(std::move(file));
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::create(shared, create));
  return image->close();
}

}  // namespace

int run_create(const VerbArgs& raw_args) {
  int status = 0;
  auto args = parse_verb_args("create", kHelp, raw_args,
                              {{'f', nullptr, true}, {'o', nullptr, true}, {'b', nullptr, true},
                               {'F', nullptr, true}, {'q', nullptr, false},
                               // -u (do not open the backing file): qcowkit never does.
                               {'u', nullptr, false}},
                              status);
  if (!args) return status;
  std::string format = "qcow2";
  if (auto f = args->last("f")) {
    auto name = parse_format_name(*f);
    if (!name.ok()) return usage_error("create", name.error().message);
    format = *name;
  }
  if (args->positionals.size() != 2) return usage_error("create", "expected IMAGE and SIZE");
  const std::string& path = args->positionals[0];
  auto size = parse_size(args->positionals[1]);
  if (!size.ok()) return usage_error("create", size.error().message);

  auto kv = parse_key_values(args->all("o"));
  if (!kv.ok()) return usage_error("create", kv.error().message);

  Status created;
  std::string description;
  if (format == "raw") {
    if (!kv->empty() || args->has("b"))
      return usage_error("create", "raw images take no -o options and no backing file");
    created = create_raw(path, *size);
    description = "fmt=raw size=" + std::to_string(*size);
  } else if (const ImageFormat* other = find_image_format(format)) {
    if (args->has("b")) return usage_error("create", std::string(other->name) + " images take no backing file");
    if (auto checked = other->check_options(*kv); !checked.ok())
      return usage_error("create", checked.error().message);
    created = create_other(*other, path, *size, *kv);
    description = other->describe(*size, *kv);
  } else {
    Qcow2CreateOptions create;
    create.size = *size;
    if (auto b = args->last("b")) create.backing_file = *b;
    if (auto fmt = args->last("F")) create.backing_format = *fmt;
    auto applied = apply_qcow2_create_options(*kv, create);
    if (!applied.ok()) return usage_error("create", applied.error().message);
    if (!create.backing_format.empty() && create.backing_format != "raw" &&
        create.backing_format != "qcow2")
      return usage_error("create", "backing format must be raw or qcow2");
    if (!create.backing_file.empty() && create.backing_format.empty())
      return usage_error("create", "a backing file needs its format too (-F raw|qcow2)");
    created = create_qcow2(path, create);
    description = describe_qcow2_create_options(create);
  }
  if (!args->has("q")) std::printf("Formatting '%s', %s\n", path.c_str(), description.c_str());
  if (!created.ok()) return report_error("create", with_context(created.error(), path));
  return 0;
}

}  // namespace qcowkit::cli
