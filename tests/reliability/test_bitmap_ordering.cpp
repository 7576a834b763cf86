// Power cuts during bitmap directory changes (add, clear, merge, disable,
// remove, removing the last one): at every barrier, each crash state of the
// open window (all of it, none of it, all of it but any one write) must open
// with either the old or the new bitmap directory, each bitmap reading as it
// did before or after the change, and check clean apart from leaks.
#include <functional>
#include <set>
#include <sstream>

#include "qcowkit/qcow2.hpp"
#include "test_support.hpp"
#include "window_device.hpp"

using namespace qcowkit;
using namespace qcowkit::test;
using namespace qcowkit::reliability;

namespace {

constexpr uint64_t kSize = 8u << 20;

// What a crash state holds, as text: its bitmaps (name, flags, granularity,
// dirty ranges), or what is wrong with it.
std::string signature(const std::shared_ptr<BlockDevice>& dev) {
  Qcow2OpenOptions o;
  o.read_only = true;
  auto image = Qcow2Image::open(dev, o);
  if (!image.ok()) return "does not open: " + image.error().message;
  auto report = (*image)->check(RepairMode::none);
  if (!report.ok()) return "check fails: " + report.error().message;
  if (report->corruptions != 0)
    return "check finds corruptions: " + (report->messages.empty() ? "" : report->messages.front());
  std::ostringstream out;
  for (const Qcow2Bitmap& b : (*image)->details().bitmaps) {
    out << b.name << " flags " << b.flags << " granularity " << b.granularity_bits << ":";
    auto ranges = (*image)->bitmap_ranges(b.name);
    if (!ranges.ok()) return "bitmap " + b.name + " unreadable: " + ranges.error().message;
    for (const Extent& e : *ranges)
      if (e.kind == ExtentKind::data) out << " " << e.offset << "+" << e.length;
    out << ";";
  }
  return out.str();
}

std::shared_ptr<WindowDevice> image_with_bitmaps() {
  auto dev = std::make_shared<WindowDevice>(0);
  Qcow2CreateOptions c;
  c.size = kSize;
  c.cluster_size = 4096;
  auto made = Qcow2Image::create(dev, c);
  REQUIRE_OK(made);
  REQUIRE_OK((*made)->add_bitmap("a", 4096, true));
  REQUIRE_OK((*made)->add_bitmap("b", 65536, true));
  auto data = pattern_bytes(3 * 4096, 1);
  REQUIRE_OK((*made)->write(12288, data));
  REQUIRE_OK((*made)->write(5u << 20, data));
  REQUIRE_OK((*made)->close());
  REQUIRE_OK(dev->flush());
  return dev;
}

// Runs `change` on a freshly opened image of `dev` and checks every crash
// state of every window against the states before and after.
void check_change(const std::shared_ptr<WindowDevice>& dev, const std::function<Status(Qcow2Image&)>& change) {
  const std::string before = signature(dev->crash_state([](size_t) { return true; }));
  REQUIRE(before.find(':') != std::string::npos);
  std::vector<std::pair<std::string, std::string>> seen;  // where, signature
  {
    auto image = Qcow2Image::open(dev, {});
    REQUIRE_OK(image);
    dev->on_barrier = [&](const WindowDevice& d) {
      const std::string at = "barrier " + std::to_string(d.barriers());
      seen.emplace_back(at + " whole window", signature(d.crash_state([](size_t) { return true; })));
      seen.emplace_back(at + " none", signature(d.crash_state([](size_t) { return false; })));
      for (size_t skip = 0, n = d.window_size(); skip < n; ++skip)
        seen.emplace_back(at + " without write " + std::to_string(skip),
                          signature(d.crash_state([skip](size_t i) { return i != skip; })));
    };
    REQUIRE_OK(change(**image));
    REQUIRE_OK((*image)->close());
    dev->on_barrier = nullptr;
  }
  const std::string after = signature(dev->crash_state([](size_t) { return true; }));
  INFO("before: " << before << "\nafter: " << after);
  REQUIRE(before != after);
  size_t old_states = 0, new_states = 0;
  for (const auto& [where, sig] : seen) {
    INFO(where << ": " << sig);
    CHECK((sig == before || sig == after));
    old_states += sig == before;
    new_states += sig == after;
  }
  CHECK(old_states > 0);
  CHECK(new_states > 0);
}

}  // namespace

TEST_CASE("bitmap add: every crash state has the old or the new directory", "[reliability][bitmaps]") {
  auto dev = image_with_bitmaps();
  check_change(dev, [](Qcow2Image& i) { return i.add_bitmap("c", 512, false); });
}

TEST_CASE("bitmap clear: every crash state has the old or the new directory", "[reliability][bitmaps]") {
  auto dev = image_with_bitmaps();
  check_change(dev, [](Qcow2Image& i) { return i.clear_bitmap("a"); });
}

TEST_CASE("bitmap merge: every crash state has the old or the new directory", "[reliability][bitmaps]") {
  auto dev = image_with_bitmaps();
  REQUIRE_OK([&] {
    auto image = Qcow2Image::open(dev, {});
    REQUIRE_OK(image);
    REQUIRE_OK((*image)->clear_bitmap("b"));
    auto data = pattern_bytes(4096, 2);
    REQUIRE_OK((*image)->write(7u << 20, data));
    return (*image)->close();
  }());
  REQUIRE_OK(dev->flush());
  check_change(dev, [](Qcow2Image& i) { return i.merge_bitmap("b", "a"); });
}

TEST_CASE("bitmap disable and remove: every crash state has the old or the new directory",
          "[reliability][bitmaps]") {
  auto dev = image_with_bitmaps();
  check_change(dev, [](Qcow2Image& i) { return i.enable_bitmap("a", false); });
  check_change(dev, [](Qcow2Image& i) { return i.remove_bitmap("b"); });
  check_change(dev, [](Qcow2Image& i) { return i.remove_bitmap("a"); });  // the extension goes too
}

TEST_CASE("bitmap changes while the image is written keep every write recorded",
          "[reliability][bitmaps]") {
  auto dev = image_with_bitmaps();
  auto image = Qcow2Image::open(dev, {});
  REQUIRE_OK(image);
  auto data = pattern_bytes(4096, 3);
  REQUIRE_OK((*image)->write(1u << 20, data));   // tracking starts: a and b in use
  REQUIRE_OK((*image)->add_bitmap("c", 4096, true));
  REQUIRE_OK((*image)->write(2u << 20, data));   // recorded by a, b and c
  REQUIRE_OK((*image)->close());
  auto reopened = Qcow2Image::open(dev, {});
  REQUIRE_OK(reopened);
  for (const char* name : {"a", "b", "c"}) {
    auto ranges = (*reopened)->bitmap_ranges(name);
    REQUIRE_OK(ranges);
    bool covers_second = false, covers_first = false;
    for (const Extent& e : *ranges) {
      if (e.kind != ExtentKind::data) continue;
      covers_first |= e.offset <= (1u << 20) && e.offset + e.length >= (1u << 20) + 4096;
      covers_second |= e.offset <= (2u << 20) && e.offset + e.length >= (2u << 20) + 4096;
    }
    INFO(name);
    CHECK(covers_second);
    if (std::string(name) != "c") CHECK(covers_first);
  }
  auto report = (*reopened)->check(RepairMode::none);
  REQUIRE_OK(report);
  CHECK(report->corruptions == 0);
  CHECK(report->leaks == 0);
}

TEST_CASE("rebase -u: every crash state names the old or the new backing file",
          "[reliability][bitmaps][rebase]") {
  auto dev = image_with_bitmaps();
  auto image = Qcow2Image::open(dev, {});
  REQUIRE_OK(image);
  std::vector<std::string> seen;
  auto name_in = [](const std::shared_ptr<MemoryDevice>& state) -> std::string {
    Qcow2OpenOptions o;
    o.read_only = true;
    auto opened = Qcow2Image::open(state, o);
    if (!opened.ok()) return "does not open: " + opened.error().message;
    auto report = (*opened)->check(RepairMode::none);
    if (!report.ok() || report->corruptions) return "check fails";
    const auto d = (*opened)->details();
    if (d.bitmaps.size() != 2) return "bitmaps lost";
    return d.backing_file + "|" + d.backing_format;
  };
  dev->on_barrier = [&](const WindowDevice& d) {
    seen.push_back(name_in(d.crash_state([](size_t) { return true; })));
    seen.push_back(name_in(d.crash_state([](size_t) { return false; })));
    for (size_t skip = 0, n = d.window_size(); skip < n; ++skip)
      seen.push_back(name_in(d.crash_state([skip](size_t i) { return i != skip; })));
  };
  REQUIRE_OK((*image)->set_backing_file("base.qcow2", "qcow2", nullptr));
  REQUIRE_OK((*image)->close());
  dev->on_barrier = nullptr;
  REQUIRE_FALSE(seen.empty());
  bool saw_new = false;
  for (const std::string& s : seen) {
    INFO(s);
    CHECK((s == "|" || s == "base.qcow2|qcow2"));
    saw_new |= s == "base.qcow2|qcow2";
  }
  CHECK(saw_new);
}
