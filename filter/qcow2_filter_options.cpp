#include "qcow2_filter_options.hpp"

namespace qcowkit::filter {

const char* const kQcow2Prefix = "qcow2-";

bool is_qcow2_option(const std::string& key) { return key.rfind(kQcow2Prefix, 0) == 0; }

const char* qcow2_filter_help() {
  static const std::string help =
      serve::serve_options_help(kQcow2Prefix) + "\n" +
      "qcow2-create=SIZE      When the plugin below is empty (all zeroes) and\n"
      "                       writable, make a new image of this virtual size in it.\n"
      "qcow2-backing=PATH     The image's backing file, opened by name (default:\n"
      "                       none; an image that has one is refused).";
  return help.c_str();
}

Status apply_qcow2_option(Qcow2FilterOptions& options, const std::string& key,
                          const std::string& value, const serve::ValueParsers& parsers) {
  const std::string name = key.substr(std::string(kQcow2Prefix).size());
  QK_ASSIGN_OR_RETURN(const bool shared,
                      serve::apply_serve_option(options.serve, name, key, value, parsers));
  if (shared) return {};
  if (name == "create") {
    QK_ASSIGN_OR_RETURN(uint64_t size, parsers.parse_size(value));
    if (size == 0) return make_error(EINVAL, key + "=" + value + ": the virtual size must be above zero");
    options.create_size = size;
  } else if (name == "backing") {
    if (value.empty()) return make_error(EINVAL, key + "=: the backing file name is empty");
    options.backing = value;
  } else {
    return make_error(EINVAL, "unknown parameter '" + key + "' (see nbdkit --filter=qcow2 null --help)");
  }
  return {};
}

Status check_qcow2_options(const Qcow2FilterOptions& options) {
  if (!options.serve.snapshot.empty() && options.create_size)
    return make_error(EINVAL, "qcow2-snapshot= serves an existing snapshot; it does not go with qcow2-create=");
  return {};
}

}  // namespace qcowkit::filter
