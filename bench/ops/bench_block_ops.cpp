// bench_block_ops: runs one block operation over raw files and exits 0 on
// success (for compare: 0 equal, 1 different, as qemu-img compare does).
//   bench_block_ops copy|sparse_copy SRC DST [PARALLELISM [CHUNK]]
//   bench_block_ops compare A B [PARALLELISM [CHUNK]]
//   bench_block_ops fill FILE SIZE SEED   (a half-sparse test image)
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>

#include "qcowkit/block_ops.hpp"
#include "qcowkit/file_device.hpp"
#include "qcowkit/memory_device.hpp"

using namespace qcowkit;

namespace {

int fail(const Error& error) {
  std::fprintf(stderr, "bench_block_ops: %s\n", error.message.c_str());
  return 2;
}

// Every other 4 MiB is random data, the rest stays a hole.
Status make_half_sparse(const std::string& path, uint64_t size, uint64_t seed) {
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, {.create = true, .truncate = true}));
  QK_TRY(file->resize(size));
  constexpr uint64_t kStripe = 4u << 20;
  for (uint64_t offset = 0; offset < size; offset += 2 * kStripe) {
    MemoryDevice stripe(std::min(kStripe, size - offset));
    QK_TRY(fill_random(stripe, seed + offset, {}));
    std::vector<uint8_t> bytes(stripe.info().size);
    QK_TRY(stripe.read(0, bytes));
    QK_TRY(file->write(offset, bytes));
  }
  return file->close();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s copy|sparse_copy|compare A B [PARALLELISM [CHUNK]]\n"
                         "       %s fill FILE SIZE SEED\n", argv[0], argv[0]);
    return 2;
  }
  const std::string op = argv[1];
  if (op == "fill") {
    if (argc < 5) return 2;
    Status st = make_half_sparse(argv[2], std::strtoull(argv[3], nullptr, 0),
                                 std::strtoull(argv[4], nullptr, 0));
    return st.ok() ? 0 : fail(st.error());
  }
  CopyOptions options;
  if (argc > 4) options.parallelism = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 0));
  if (argc > 5) options.chunk_size = std::strtoull(argv[5], nullptr, 0);

  auto a = FileDevice::open(argv[2], {.read_only = true});
  if (!a.ok()) return fail(a.error());
  if (op == "compare") {
    auto b = FileDevice::open(argv[3], {.read_only = true});
    if (!b.ok()) return fail(b.error());
    auto r = compare(**a, **b, options);
    if (!r.ok()) return fail(r.error());
    return r->equal ? 0 : 1;
  }
  // Like qemu-img convert: the destination is created new, so it reads as zeroes.
  auto b = FileDevice::open(argv[3], {.create = true, .truncate = true});
  if (!b.ok()) return fail(b.error());
  if (auto st = (*b)->resize((*a)->info().size); !st.ok()) return fail(st.error());
  options.destination_is_zero = true;
  Status st = op == "copy" ? copy(**a, **b, options)
              : op == "sparse_copy" ? sparse_copy(**a, **b, options)
              : Status(make_error(EINVAL, "unknown operation " + op));
  if (!st.ok()) return fail(st.error());
  st = (*b)->close();
  return st.ok() ? 0 : fail(st.error());
}
