// Compression codecs for the WebAssembly build. builtin_codecs() is empty
// there (no zlib or libzstd), so these forward to JavaScript libraries
// bundled into the module (see wasm/js/codecs.js and the README):
//   deflate: decode with fflate, encode with pako (4 KiB window, as QEMU reads)
//   zstd:    decode with fzstd; encoding is not offered (the page writes deflate)
//   zlib streams (vmdk grains): fflate and pako again
// builtin_codecs() returns this set in the module (see js_codecs.cpp).
#pragma once

#include "qcowkit/codec.hpp"

namespace qcowkit::wasm {

const CodecSet& js_codecs();

}  // namespace qcowkit::wasm
