// Writes a new streamOptimized VMDK: every grain is compressed once, when
// the writes have moved past it, and appended behind a grain marker; the
// grain tables are written on flush and close, then an end-of-stream
// marker. The layout is qemu-img's (directories and tables at the front).
// The forward-only variant (make_forward_stream_writer) writes each byte
// once, in order, to a ByteSink: its directory and tables follow the
// grains, in a footer.
//
// Thread safety: not thread-safe; writes must come in guest order, one at
// a time (the copy engine's in-order commits). A write before the grain
// being filled fails with ENOTSUP. Reading needs a reopen (open_vmdk).
#pragma once

#include <memory>
#include <string>

#include "formats/vmdk_structs.hpp"
#include "qcowkit/block_device.hpp"
#include "qcowkit/byte_sink.hpp"
#include "qcowkit/vmdk.hpp"

namespace qcowkit::formats::vmdk {

// `file` holds a new image's header, descriptor and empty tables (h).
std::unique_ptr<BlockDevice> make_stream_writer(std::shared_ptr<BlockDevice> file, const Header& h);

// The same, written strictly forward onto `sink` (directory in a footer);
// the header and descriptor go out at once, the tables on close().
Result<std::unique_ptr<VmdkStreamWriter>> make_forward_stream_writer(ByteSink& sink, uint64_t size,
                                                                const std::string& file_name);

}  // namespace qcowkit::formats::vmdk
