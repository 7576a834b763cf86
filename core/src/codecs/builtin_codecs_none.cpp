// Builds without native compression libraries (WebAssembly) link no codecs:
// wasm/ supplies its own CodecSet. Native builds use native/builtin_codecs.cpp.
#ifndef QCOWKIT_HAVE_ZLIB

#include "qcowkit/codec.hpp"

namespace qcowkit {

const CodecSet& builtin_codecs() {
  static const CodecSet none{};
  return none;
}

}  // namespace qcowkit

#endif
