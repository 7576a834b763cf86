#include "qcowkit/option_values.hpp"

#include <cctype>
#include <cmath>
#include <string>

namespace qcowkit {
namespace {

Error bad_size(std::string_view text, const char* why) {
  return make_error(EINVAL, "invalid size '" + std::string(text) + "': " + why);
}

int suffix_shift(char c) {
  switch (std::tolower(static_cast<unsigned char>(c))) {
    case 'b': return 0;
    case 'k': return 10;
    case 'm': return 20;
    case 'g': return 30;
    case 't': return 40;
    case 'p': return 50;
    case 'e': return 60;
    default: return -1;
  }
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  size_t pos = 0;
  uint64_t whole = 0;
  bool any_digit = false;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    unsigned digit = text[pos] - '0';
    if (whole > (UINT64_MAX - digit) / 10) return bad_size(text, "too large");
    whole = whole * 10 + digit;
    any_digit = true;
    ++pos;
  }
  // An optional fraction, meaningful only with a suffix ("1.5G").
  double fraction = 0;
  size_t fraction_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    double scale = 0.1;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      fraction += (text[pos] - '0') * scale;
      scale /= 10;
      ++fraction_digits;
      ++pos;
    }
    if (fraction_digits == 0) return bad_size(text, "expected digits after '.'");
  }
  if (!any_digit) return bad_size(text, "expected a number");

  int shift = 0;
  if (pos < text.size()) {
    shift = suffix_shift(text[pos]);
    if (shift < 0 || pos + 1 != text.size())
      return bad_size(text, "unknown suffix (use K, M, G, T, P or E)");
  }
  if (shift < 64 && whole > (UINT64_MAX >> shift)) return bad_size(text, "too large");
  uint64_t bytes = whole << shift;
  if (fraction_digits > 0) {
    double extra = std::floor(fraction * std::ldexp(1.0, shift));
    if (shift == 0 && extra == 0 && fraction > 0) return bad_size(text, "fractional bytes");
    if (extra >= static_cast<double>(UINT64_MAX - bytes)) return bad_size(text, "too large");
    bytes += static_cast<uint64_t>(extra);
  }
  return bytes;
}

Result<SizeChange> parse_size_change(std::string_view text) {
  SizeChange change;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    change.kind = text[0] == '+' ? SizeChange::Kind::grow : SizeChange::Kind::shrink;
    text.remove_prefix(1);
  }
  QK_ASSIGN_OR_RETURN(change.amount, parse_size(text));
  return change;
}

Result<uint64_t> SizeChange::apply(uint64_t current) const {
  switch (kind) {
    case Kind::absolute:
      return amount;
    case Kind::grow:
      if (amount > UINT64_MAX - current)
        return make_error(EINVAL, "new size overflows: " + std::to_string(current) + " + " +
                                      std::to_string(amount));
      return current + amount;
    case Kind::shrink:
      if (amount > current)
        return make_error(EINVAL, "cannot shrink by " + std::to_string(amount) +
                                      " bytes: the image has only " + std::to_string(current));
      return current - amount;
  }
  return make_error(EINVAL, "unknown size change");
}

Result<bool> parse_on_off(const std::string& key, const std::string& value) {
  if (value == "on" || value == "true" || value == "yes" || value == "1") return true;
  if (value == "off" || value == "false" || value == "no" || value == "0") return false;
  return make_error(EINVAL, "option '" + key + "' expects on or off, not '" + value + "'");
}

}  // namespace qcowkit
