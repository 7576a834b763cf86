// qcow2-interop-driver: a test-only program that exercises the qcow2 engine
// on files, so that scripts can hold its results against qemu-img's.
//
//   read-compare IMAGE RAW [BACKING]   every byte of IMAGE equals RAW (exit 0) or not (1)
//   map IMAGE [BACKING]                the mapping as qemu-img map --output=json prints it
//   check IMAGE [leaks|all]            check (and repair), printed as key=value lines
//   create IMAGE SIZE [key=value...]   compat, cluster_size, refcount_bits, lazy_refcounts, preallocation
//   workload IMAGE RAW SEED OPS [LOG]  a seeded random workload, mirrored on RAW
//                                      (LOG: "offset length" of every change)
//
// Backing images given on the command line are opened read-only as qcow2 if
// they look like qcow2, else as raw.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qcowkit/file_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "qcow2-interop-driver: %s\n", what.c_str());
  return 2;
}

Result<std::shared_ptr<BlockDevice>> open_any(const std::string& path, bool read_only,
                                              std::shared_ptr<BlockDevice> backing = nullptr) {
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, {.read_only = read_only}));
  std::shared_ptr<BlockDevice> device(std::move(file));
  if (!Qcow2Image::looks_like_qcow2(*device)) return device;
  Qcow2OpenOptions options;
  options.read_only = read_only;
  options.backing = std::move(backing);
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::open(device, options));
  return std::shared_ptr<BlockDevice>(std::move(image));
}

Result<std::shared_ptr<Qcow2Image>> open_qcow2(const std::string& path, bool read_only,
                                               const char* backing_path) {
  std::shared_ptr<BlockDevice> backing;
  if (backing_path) {
    QK_ASSIGN_OR_RETURN(backing, open_any(backing_path, true));
  }
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, {.read_only = read_only}));
  Qcow2OpenOptions options;
  options.read_only = read_only;
  options.backing = backing;
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::open(std::shared_ptr<BlockDevice>(std::move(file)), options));
  return std::shared_ptr<Qcow2Image>(std::move(image));
}

int read_compare(int argc, char** argv) {
  if (argc < 4) return fail("usage: read-compare IMAGE RAW [BACKING]");
  auto image = open_qcow2(argv[2], true, argc > 4 ? argv[4] : nullptr);
  if (!image.ok()) return fail(image.error().message);
  auto raw = FileDevice::open(argv[3], {.read_only = true});
  if (!raw.ok()) return fail(raw.error().message);
  const uint64_t size = (*image)->info().size;
  if ((*raw)->info().size != size)
    return fail("sizes differ: image " + std::to_string(size) + ", raw " + std::to_string((*raw)->info().size));
  // Odd-sized reads at odd offsets exercise partial clusters too.
  std::vector<uint8_t> a(1 << 20), b(1 << 20);
  uint64_t step = 777777;
  for (uint64_t pos = 0; pos < size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(step, size - pos));
    auto ra = (*image)->read(pos, ByteSpan(a.data(), n));
    if (!ra.ok()) return fail(ra.error().message);
    auto rb = (*raw)->read(pos, ByteSpan(b.data(), n));
    if (!rb.ok()) return fail(rb.error().message);
    if (std::memcmp(a.data(), b.data(), n) != 0) {
      size_t i = 0;
      while (a[i] == b[i]) ++i;
      std::printf("differ at offset %" PRIu64 "\n", pos + i);
      return 1;
    }
    pos += n;
    step = step == 777777 ? 1u << 20 : 777777;
  }
  return 0;
}

int map(int argc, char** argv) {
  if (argc < 3) return fail("usage: map IMAGE [BACKING]");
  auto image = open_qcow2(argv[2], true, argc > 3 ? argv[3] : nullptr);
  if (!image.ok()) return fail(image.error().message);
  auto entries = (*image)->map(0, (*image)->info().size);
  if (!entries.ok()) return fail(entries.error().message);
  std::printf("[");
  for (size_t i = 0; i < entries->size(); ++i) {
    const MapEntry& e = (*entries)[i];
    std::printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %d, \"present\": %s, "
                "\"zero\": %s, \"data\": %s, \"compressed\": %s",
                i ? ",\n" : "", e.offset, e.length, e.depth, e.present ? "true" : "false",
                e.zero ? "true" : "false", e.data ? "true" : "false", e.compressed ? "true" : "false");
    if (e.host_offset) std::printf(", \"offset\": %" PRIu64, *e.host_offset);
    std::printf("}");
  }
  std::printf("]\n");
  return 0;
}

int check(int argc, char** argv) {
  if (argc < 3) return fail("usage: check IMAGE [leaks|all]");
  RepairMode mode = RepairMode::none;
  if (argc > 3) mode = std::string(argv[3]) == "all" ? RepairMode::all : RepairMode::leaks;
  auto image = open_qcow2(argv[2], mode == RepairMode::none, nullptr);
  if (!image.ok()) return fail(image.error().message);
  auto report = (*image)->check(mode);
  if (!report.ok()) return fail(report.error().message);
  std::printf("corruptions=%" PRIu64 "\nleaks=%" PRIu64 "\ncheck_errors=%" PRIu64
              "\ncorruptions_fixed=%" PRIu64 "\nleaks_fixed=%" PRIu64 "\nimage_end_offset=%" PRIu64
              "\ntotal_clusters=%" PRIu64 "\nallocated_clusters=%" PRIu64
              "\nfragmented_clusters=%" PRIu64 "\ncompressed_clusters=%" PRIu64 "\n",
              report->corruptions, report->leaks, report->check_errors, report->corruptions_fixed,
              report->leaks_fixed, report->image_end_offset, report->total_clusters,
              report->allocated_clusters, report->fragmented_clusters, report->compressed_clusters);
  for (const std::string& m : report->messages) std::fprintf(stderr, "%s\n", m.c_str());
  auto closed = (*image)->close();
  if (!closed.ok()) return fail(closed.error().message);
  return 0;
}

int create(int argc, char** argv) {
  if (argc < 4) return fail("usage: create IMAGE SIZE [key=value...]");
  Qcow2CreateOptions o;
  o.size = std::stoull(argv[3]);
  for (int i = 4; i < argc; ++i) {
    std::string kv = argv[i];
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "compat") o.version = value == "0.10" ? 2 : 3;
    else if (key == "cluster_size") o.cluster_size = static_cast<uint32_t>(std::stoul(value));
    else if (key == "refcount_bits") o.refcount_bits = static_cast<unsigned>(std::stoul(value));
    else if (key == "lazy_refcounts") o.lazy_refcounts = value == "on";
    else if (key == "extended_l2") o.extended_l2 = value == "on";
    else if (key == "compression_type") o.compression_type = value == "zstd" ? CompressionType::zstd : CompressionType::deflate;
    else if (key == "preallocation")
      o.preallocation = value == "metadata" ? Preallocation::metadata
                        : value == "falloc" ? Preallocation::falloc
                        : value == "full"   ? Preallocation::full
                                            : Preallocation::off;
    else return fail("unknown option " + key);
  }
  auto file = FileDevice::open(argv[2], {.create = true, .truncate = true});
  if (!file.ok()) return fail(file.error().message);
  auto image = Qcow2Image::create(std::shared_ptr<BlockDevice>(std::move(*file)), o);
  if (!image.ok()) return fail(image.error().message);
  auto closed = (*image)->close();
  if (!closed.ok()) return fail(closed.error().message);
  return 0;
}

// Random writes, zeroes, discards, compressed writes and resizes, the same
// on the image and on a raw mirror; reopens now and then. Images with
// persistent bitmaps are not resized (the engine refuses, as QEMU does), and
// every change is logged so that a test can check the bitmaps cover it.
int workload(int argc, char** argv) {
  if (argc < 6) return fail("usage: workload IMAGE RAW SEED OPS [LOG]");
  FILE* log = argc > 6 ? std::fopen(argv[6], "w") : nullptr;
  if (argc > 6 && !log) return fail(std::string("cannot write ") + argv[6]);
  auto changed = [log](uint64_t offset, uint64_t length) {
    if (log) std::fprintf(log, "%llu %llu\n", (unsigned long long)offset, (unsigned long long)length);
  };
  const std::string image_path = argv[2], raw_path = argv[3];
  std::mt19937_64 rng(std::stoull(argv[4]));
  const uint64_t ops = std::stoull(argv[5]);
  auto raw_file = FileDevice::open(raw_path, {.create = true});
  if (!raw_file.ok()) return fail(raw_file.error().message);
  std::shared_ptr<BlockDevice> raw(std::move(*raw_file));
  auto reopen = [&]() { return open_qcow2(image_path, false, nullptr); };
  auto image = reopen();
  if (!image.ok()) return fail(image.error().message);
  const uint32_t cs = (*image)->cluster_size();
  if (raw->info().size != (*image)->info().size) {
    auto st = raw->resize((*image)->info().size);
    if (!st.ok()) return fail(st.error().message);
  }
  std::vector<uint8_t> buf;
  for (uint64_t i = 0; i < ops; ++i) {
    const uint64_t size = (*image)->info().size;
    const unsigned what = rng() % 100;
    const uint64_t offset = size ? (rng() % size) & ~uint64_t{511} : 0;
    uint64_t length = std::min<uint64_t>(size - offset, ((rng() % (3 * cs)) + 512) & ~uint64_t{511});
    if (length == 0) continue;
    Status a, b;
    if (what < 50) {
      buf.resize(length);
      for (auto& byte : buf) byte = static_cast<uint8_t>(rng());
      if (rng() % 4 == 0) std::memset(buf.data(), 0, length / 2);
      a = (*image)->write(offset, buf, {.fua = rng() % 16 == 0});
      b = raw->write(offset, buf);
      changed(offset, length);
    } else if (what < 62) {
      ZeroFlags flags{.may_trim = rng() % 2 == 0};
      a = (*image)->write_zeroes(offset, length, flags);
      b = raw->write_zeroes(offset, length);
      changed(offset, length);
    } else if (what < 72) {
      a = (*image)->discard(offset, length);
      b = raw->write_zeroes(offset, length);
      changed(offset, length);
    } else if (what < 80) {
      const uint64_t cluster = (rng() % ((size + cs - 1) / cs)) * cs;
      const uint64_t n = std::min<uint64_t>(cs, size - cluster);
      buf.assign(n, 0);
      for (uint64_t k = 0; k < n / 2; ++k) buf[k] = static_cast<uint8_t>(k * 7);
      a = (*image)->write_compressed(cluster, buf);
      b = raw->write(cluster, buf);
      changed(cluster, n);
    } else if (what < 86 && !(*image)->details().bitmaps.empty()) {
      continue;  // no resizes: the bitmaps would no longer cover the image
    } else if (what < 84) {
      const uint64_t new_size = size + ((rng() % 8) * cs) + 512 * (rng() % 3);
      a = (*image)->resize(new_size);
      b = raw->resize(new_size);
    } else if (what < 86 && size > 4 * uint64_t{cs} && (*image)->details().snapshots.empty()) {
      const uint64_t new_size = size - ((rng() % 3) * cs + 512 * (rng() % 3));
      a = (*image)->resize(new_size, true);
      b = raw->resize(new_size);
    } else if (what < 92) {
      a = (*image)->flush();
    } else if (what < 95) {
      a = (*image)->close();
      if (a.ok()) {
        image = reopen();
        if (!image.ok()) return fail("reopen: " + image.error().message);
      }
    } else {
      buf.resize(length);
      a = (*image)->read(offset, buf);
      std::vector<uint8_t> expect(length);
      b = raw->read(offset, expect);
      if (a.ok() && b.ok() && buf != expect) return fail("read mismatch at " + std::to_string(offset));
    }
    if (!a.ok()) return fail("op " + std::to_string(i) + ": " + a.error().message);
    if (!b.ok()) return fail("raw op " + std::to_string(i) + ": " + b.error().message);
  }
  if (log) std::fclose(log);
  auto st = (*image)->close();
  if (!st.ok()) return fail(st.error().message);
  st = raw->close();
  if (!st.ok()) return fail(st.error().message);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: qcow2-interop-driver read-compare|map|check|create|workload ...");
  const std::string verb = argv[1];
  if (verb == "read-compare") return read_compare(argc, argv);
  if (verb == "map") return map(argc, argv);
  if (verb == "check") return check(argc, argv);
  if (verb == "create") return create(argc, argv);
  if (verb == "workload") return workload(argc, argv);
  return fail("unknown verb " + verb);
}
