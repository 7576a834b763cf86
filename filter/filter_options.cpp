#include "filter_options.hpp"

#define NBDKIT_API_VERSION 2
#include <nbdkit-filter.h>

namespace qcowkit::filter {

const char* const kConfigHelp =
    "blockcache-size=SIZE       Memory bound of the cache (default 64M).\n"
    "blockcache-mode=MODE       writeback (default) | writethrough | unsafe\n"
    "                           (unsafe ignores flush; close still writes back).\n"
    "blockcache-read=on|off     Also keep clean data read from the plugin (default off).\n"
    "blockcache-extents=MODE    passthrough (default) | scan | off.\n"
    "blockcache-scan-block=SIZE Granularity of blockcache-extents=scan (default 64K).\n"
    "blockcache-page=SIZE       Cache page size, a power of two (default 4K).\n"
    "blockcache-threads=N       Write-back requests in flight (default 64).\n"
    "blockcache-write-around=on|off  Send writes straight to a plugin as fast\n"
    "                           as memory (default on).";

namespace {

Result<uint64_t> parse_size(const std::string& key, const std::string& value) {
  const int64_t n = nbdkit_parse_size(value.c_str());
  if (n < 0) return make_error(EINVAL, key + ": cannot parse size '" + value + "'");
  return static_cast<uint64_t>(n);
}

Result<bool> parse_on_off(const std::string& key, const std::string& value) {
  const int on = nbdkit_parse_bool(value.c_str());
  if (on < 0) return make_error(EINVAL, key + ": expected on or off, not '" + value + "'");
  return on != 0;
}

}  // namespace

bool is_filter_option(const std::string& key) { return key.rfind("blockcache-", 0) == 0; }

Status apply_option(FilterOptions& options, const std::string& key, const std::string& value) {
  BlockCacheOptions& c = options.cache;
  if (key == "blockcache-size") {
    QK_ASSIGN_OR_RETURN(c.max_size, parse_size(key, value));
  } else if (key == "blockcache-page") {
    QK_ASSIGN_OR_RETURN(const uint64_t page, parse_size(key, value));
    if (page > (16u << 20)) return make_error(EINVAL, key + ": page size is above 16M");
    c.page_size = static_cast<uint32_t>(page);
  } else if (key == "blockcache-scan-block") {
    QK_ASSIGN_OR_RETURN(c.scan_block, parse_size(key, value));
  } else if (key == "blockcache-mode") {
    if (value == "writeback") c.policy = CachePolicy::write_back;
    else if (value == "writethrough") c.policy = CachePolicy::write_through;
    else if (value == "unsafe") c.policy = CachePolicy::unsafe;
    else return make_error(EINVAL, key + ": expected writeback, writethrough or unsafe, not '" + value + "'");
  } else if (key == "blockcache-read") {
    QK_ASSIGN_OR_RETURN(c.cache_reads, parse_on_off(key, value));
  } else if (key == "blockcache-write-around") {
    QK_ASSIGN_OR_RETURN(c.write_around_fast_device, parse_on_off(key, value));
  } else if (key == "blockcache-extents") {
    if (value == "passthrough") c.extents = ExtentMode::passthrough;
    else if (value == "scan") c.extents = ExtentMode::scan;
    else if (value == "off") c.extents = ExtentMode::off;
    else return make_error(EINVAL, key + ": expected passthrough, scan or off, not '" + value + "'");
  } else if (key == "blockcache-threads") {
    unsigned n = 0;
    if (nbdkit_parse_unsigned(key.c_str(), value.c_str(), &n) == -1 || n == 0 || n > 256)
      return make_error(EINVAL, key + ": expected a number from 1 to 256, not '" + value + "'");
    c.writeback_parallelism = n;
  } else {
    return make_error(EINVAL, "unknown option " + key);
  }
  return {};
}

Status check_options(const FilterOptions& options) {
  const BlockCacheOptions& c = options.cache;
  if (c.page_size == 0 || (c.page_size & (c.page_size - 1)) != 0)
    return make_error(EINVAL, "blockcache-page: " + std::to_string(c.page_size) +
                                  " is not a power of two");
  if (c.max_size / c.page_size < 16)
    return make_error(EINVAL, "blockcache-size: " + std::to_string(c.max_size) +
                                  " bytes hold fewer than 16 pages of " +
                                  std::to_string(c.page_size) + " bytes");
  if (c.extents == ExtentMode::scan && (c.scan_block == 0 || c.scan_block > (1u << 30)))
    return make_error(EINVAL, "blockcache-scan-block: must be between 1 and 1G");
  return {};
}

}  // namespace qcowkit::filter
