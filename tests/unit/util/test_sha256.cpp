// SHA-256 against the FIPS 180 example vectors and sha256sum-known digests.
#include <string>
#include <algorithm>
#include <vector>

#include "qcowkit/sha256.hpp"
#include "test_support.hpp"

using namespace qcowkit;

namespace {

std::string hash_of(const std::string& text) {
  Sha256 h;
  h.update(ConstByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  return Sha256::to_hex(h.finish());
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180 example vectors", "[sha256]") {
  CHECK(hash_of("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hash_of("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hash_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("sha256 of a million 'a' fed in uneven pieces", "[sha256]") {
  Sha256 h;
  std::vector<uint8_t> a(1000000, 'a');
  size_t pos = 0, step = 1;
  while (pos < a.size()) {
    size_t n = std::min(step, a.size() - pos);
    h.update(ConstByteSpan(a.data() + pos, n));
    pos += n;
    step = step * 3 % 997 + 1;  // varied sizes cross block boundaries every way
  }
  CHECK(Sha256::to_hex(h.finish()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 finish resets the state", "[sha256]") {
  Sha256 h;
  h.update(ConstByteSpan(reinterpret_cast<const uint8_t*>("abc"), 3));
  (void)h.finish();
  CHECK(Sha256::to_hex(h.finish()) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("sha256 lengths around the padding boundary differ from each other", "[sha256]") {
  // 55, 56 and 64 bytes take different padding paths; known digests of 'a'*n.
  CHECK(hash_of(std::string(55, 'a')) ==
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(hash_of(std::string(56, 'a')) ==
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(hash_of(std::string(64, 'a')) ==
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}
