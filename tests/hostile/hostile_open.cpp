// Opens one hostile image with the core the way an adapter would, and checks
// the outcome against what expected.tsv says it must be:
//   qcowkit-hostile-open IMAGE EXPECTATION[|EXPECTATION...]
// Every failure along the way must carry a message; a crash, a hang or
// running out of the memory cap fails the test through the calling script.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "qcowkit/file_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/qcow2.hpp"

using namespace qcowkit;

namespace {

struct Outcome {
  bool ro_open = false, rw_open = false, read_error = false, check_corrupt = false;
  std::vector<std::string> errors;  // every error message met
};

bool note(Outcome& out, const Status& st, const char* what) {
  if (st.ok()) return true;
  out.errors.push_back(std::string(what) + ": " + st.error().message);
  return false;
}

// A private copy in memory, so a read-write open never changes the committed file.
Result<std::shared_ptr<MemoryDevice>> load_copy(const std::string& path) {
  QK_ASSIGN_OR_RETURN(auto file, FileDevice::open(path, {.read_only = true}));
  const uint64_t size = file->info().size;
  auto copy = std::make_shared<MemoryDevice>(size);
  std::vector<uint8_t> bytes(size);
  QK_TRY(file->read(0, bytes));
  QK_TRY(copy->write(0, bytes));
  return copy;
}

// Reads the whole virtual disk (at most 64 MiB of it) in 64 KiB pieces.
void read_everything(Qcow2Image& image, Outcome& out) {
  const uint64_t size = std::min<uint64_t>(image.info().size, 64u << 20);
  std::vector<uint8_t> buf(64u << 10);
  for (uint64_t pos = 0; pos < size; pos += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), size - pos);
    Status st = image.read(pos, ByteSpan(buf.data(), n));
    if (!st.ok()) {
      out.read_error = true;
      note(out, st, "read");
      if (st.error().message.empty()) out.errors.push_back("read: EMPTY MESSAGE");
    }
  }
  auto extents = image.extents(0, size);
  if (!extents.ok()) out.errors.push_back("extents: " + extents.error().message);
  auto map = image.map(0, size);
  if (!map.ok()) out.errors.push_back("map: " + map.error().message);
}

void run_check(Qcow2Image& image, Outcome& out) {
  auto report = image.check(RepairMode::none);
  if (!report.ok()) {
    out.check_corrupt = true;
    out.errors.push_back("check: " + report.error().message);
  } else if (report->corruptions || report->check_errors) {
    out.check_corrupt = true;
    out.errors.push_back("check: " + std::to_string(report->corruptions) + " corruptions" +
                         (report->messages.empty() ? "" : ", first: " + report->messages[0]));
  }
}

bool matches(const Outcome& o, const std::string& expectation) {
  if (expectation == "refuse") return !o.ro_open && !o.rw_open;
  if (expectation == "refuse-rw") return o.ro_open && !o.rw_open;
  if (expectation == "corrupt") return o.ro_open && (o.check_corrupt || o.read_error);
  if (expectation == "read-error") return o.ro_open && o.read_error;
  if (expectation == "ok") return o.ro_open && o.rw_open && !o.read_error && !o.check_corrupt;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IMAGE EXPECTATION[|EXPECTATION...]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1], expected = argv[2];
  Outcome out;
  {
    auto copy = load_copy(path);
    if (!copy.ok()) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), copy.error().message.c_str());
      return 2;
    }
    (void)Qcow2Image::probe(**copy);
    Qcow2OpenOptions options;
    options.read_only = true;
    auto image = Qcow2Image::open(*copy, options);
    out.ro_open = note(out, image.ok() ? Status() : Status(image.error()), "open read-only");
    if (out.ro_open) {
      read_everything(**image, out);
      if (!out.ro_open) return 1;
    }
  }
  {
    auto copy = load_copy(path);
    auto image = Qcow2Image::open(*copy, {});
    out.rw_open = note(out, image.ok() ? Status() : Status(image.error()), "open read-write");
    if (out.rw_open) {
      // A write and a flush must either work or fail with a message.
      std::vector<uint8_t> sector(512, 0x5a);
      note(out, (*image)->write(0, sector), "write");
      note(out, (*image)->flush(), "flush");
    }
  }
  // Check what the image holds as it was (read-write opens may repair a
  // dirty image's refcounts first, as they must).
  {
    auto copy = load_copy(path);
    Qcow2OpenOptions options;
    options.read_only = !out.rw_open;
    auto image = Qcow2Image::open(*copy, options);
    if (image.ok()) run_check(**image, out);
  }
  for (const auto& e : out.errors) {
    std::printf("  %s\n", e.c_str());
    if (e.find(": ") + 2 >= e.size()) {
      std::printf("FAIL: an error without a message\n");
      return 1;
    }
  }
  std::ostringstream facts;
  facts << "ro_open=" << out.ro_open << " rw_open=" << out.rw_open << " read_error=" << out.read_error
        << " check_corrupt=" << out.check_corrupt;
  std::istringstream alternatives(expected);
  for (std::string one; std::getline(alternatives, one, '|');) {
    if (matches(out, one)) {
      std::printf("PASS %s: %s (expected %s)\n", path.c_str(), facts.str().c_str(), expected.c_str());
      return 0;
    }
  }
  std::printf("FAIL %s: %s, expected %s\n", path.c_str(), facts.str().c_str(), expected.c_str());
  return 1;
}
