// Small helpers shared by the unit tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "qcowkit/block_device.hpp"

namespace qcowkit::test {

// Fails the test with the error's message when a Result is not ok.
#define REQUIRE_OK(expr)                                                 \
  do {                                                                   \
    auto&& qk_req_ = (expr);                                             \
    INFO((qk_req_.ok() ? std::string() : qk_req_.error().message));     \
    REQUIRE(qk_req_.ok());                                               \
  } while (0)

// A fresh directory for one test's files, removed when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("QCOWKIT_TEST_TMP");
    std::filesystem::path root = base ? base : std::filesystem::temp_directory_path();
    std::filesystem::create_directories(root);
    std::string pattern = (root / "qcowkit-XXXXXX").string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> pattern_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never zero
  return v;
}

inline std::vector<uint8_t> read_all(BlockDevice& dev, uint64_t offset, size_t n) {
  std::vector<uint8_t> v(n);
  auto st = dev.read(offset, ByteSpan(v));
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());
  return v;
}

}  // namespace qcowkit::test
