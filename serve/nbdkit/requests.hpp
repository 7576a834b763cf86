// NBD requests in nbdkit's vocabulary, served by an ExportedImage: what the
// plugin's and the qcow2 filter's data callbacks do, written once.
//
// Each function is a whole entry-point body: it converts nbdkit's flags,
// runs the request under the exception guard, and on failure logs one line
// naming `name` (the image), the operation, the offset and the length,
// stores the errno in *err and returns -1. Plugins pass a local for `err`
// and hand it to nbdkit_set_error; filters pass nbdkit's.
//
// Thread safety: as ExportedImage (any number of requests at once).
#pragma once

#include <cstdint>
#include <string>

#include "qcowkit/result.hpp"
#include "serve/exported_image.hpp"
#include "serve/serve_options.hpp"

struct nbdkit_extents;

namespace qcowkit::serve::nbdkit {

int pread(ExportedImage& image, const char* name, void* buf, uint32_t count, uint64_t offset,
          int* err);
int pwrite(ExportedImage& image, const char* name, const void* buf, uint32_t count,
           uint64_t offset, uint32_t flags, int* err);
int flush(ExportedImage& image, const char* name, int* err);
int trim(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, uint32_t flags,
         int* err);
int zero(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, uint32_t flags,
         int* err);
int extents(ExportedImage& image, const char* name, uint32_t count, uint64_t offset,
            uint32_t flags, nbdkit_extents* extents, int* err);
int cache(ExportedImage& image, const char* name, uint32_t count, uint64_t offset, int* err);
int block_size(ExportedImage& image, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum);

// Logs a failed request (image, operation, range, the core's message) and
// returns its errno (EIO when the error carries none).
int report(const char* name, const char* operation, uint64_t offset, uint64_t length,
           const Error& error);

// nbdkit's own size and boolean parsers ("1G", "on"), for the options.
const ValueParsers& value_parsers();

}  // namespace qcowkit::serve::nbdkit
