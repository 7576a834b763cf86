#include "plugin_options.hpp"

#include "qcowkit/qcow2_options.hpp"

namespace qcowkit::plugin {

const char* plugin_config_help() {
  // The serving options' lines come from the serving layer, which the
  // filter shares (with its qcow2- prefix).
  static const std::string help =
      "[file=]IMAGE           The qcow2 image to serve (required).\n"
      "create=SIZE            Create IMAGE with this virtual size if it is missing.\n"
      "cluster-size=SIZE      Cluster size for create= (512 .. 2M, default 64K).\n"
      "compat=0.10|1.1        qcow2 version for create= (default 1.1).\n" +
      serve::serve_options_help("") + "\n" +
      "backing=false|true     Open the image's backing file; only a file in the\n"
      "                       image's own directory (default false: an image with\n"
      "                       a backing file is refused).\n"
      "locking=true|false     Lock the image the way QEMU does (default true).";
  return help.c_str();
}

namespace {

Error bad_value(const std::string& key, const std::string& value, const std::string& why) {
  return make_error(EINVAL, key + "=" + value + ": " + why);
}

}  // namespace

Status apply_option(PluginOptions& options, const std::string& key, const std::string& value,
                    const ValueParsers& parsers) {
  QK_ASSIGN_OR_RETURN(const bool shared, serve::apply_serve_option(options.serve, key, key, value, parsers));
  if (shared) return {};
  if (key == "file") {
    if (value.empty()) return bad_value(key, value, "the image path is empty");
    options.file = value;
  } else if (key == "create") {
    QK_ASSIGN_OR_RETURN(uint64_t size, parsers.parse_size(value));
    if (size == 0) return bad_value(key, value, "the virtual size must be above zero");
    options.create_size = size;
  } else if (key == "cluster-size" || key == "compat") {
    // qcow2's own creation options under nbdkit's spelling: the qcow2 layer
    // parses and checks them, as it does qemu-img's -o.
    const std::string qcow2_key = key == "cluster-size" ? "cluster_size" : "compat";
    if (Status st = apply_qcow2_create_options({{qcow2_key, value}}, options.create); !st.ok())
      return bad_value(key, value, st.error().message);
  } else if (key == "backing") {
    QK_ASSIGN_OR_RETURN(options.allow_backing, parsers.parse_bool(value));
  } else if (key == "locking") {
    QK_ASSIGN_OR_RETURN(options.locking, parsers.parse_bool(value));
  } else {
    return make_error(EINVAL, "unknown parameter '" + key + "' (see nbdkit qcow2 --help)");
  }
  return {};
}

Status validate_options(const PluginOptions& options) {
  if (options.file.empty())
    return make_error(EINVAL, "the image is missing: give file=IMAGE (or just IMAGE)");
  if (!options.serve.snapshot.empty() && options.create_size)
    return make_error(EINVAL, "snapshot= serves an existing snapshot; it does not go with create=");
  return {};
}

}  // namespace qcowkit::plugin
