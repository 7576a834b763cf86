// A small streaming JSON writer. Pretty mode indents by four spaces, the
// layout qemu-img uses for `info` and `check`, so diffs against it stay
// readable; compact mode writes one line (qemu-img's `map` rows).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qcowkit::cli {

// JSON string literal for `text`, quotes included; bytes that are not valid
// UTF-8 are written as \u00XX so the output always parses.
std::string json_quote(std::string_view text);

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view name);  // inside an object, before each value

  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(bool flag);
  JsonWriter& value(uint64_t number);
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(static_cast<int64_t>(number)); }
  JsonWriter& value(unsigned number) { return value(static_cast<uint64_t>(number)); }

  // Shorthand for key(name).value(v).
  template <class T>
  JsonWriter& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  const std::string& str() const { return out_; }

 private:
  void before_value();
  void newline();

  bool pretty_;
  std::string out_;
  struct Level { bool is_object; bool empty; };
  std::vector<Level> levels_;
  bool after_key_ = false;
};

}  // namespace qcowkit::cli
