// Unit tests for the command-line tool's helpers: size parsing, argument
// parsing, JSON output, and the copy pipeline (over memory devices).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <random>

#include "args.hpp"
#include "copy_pipeline.hpp"
#include "human_format.hpp"
#include "json_writer.hpp"
#include "qcowkit/testing/faulty_device.hpp"
#include "qcowkit/memory_device.hpp"
#include "qcowkit/option_values.hpp"

using namespace qcowkit;
using namespace qcowkit::cli;

TEST_CASE("sizes parse with binary suffixes", "[size]") {
  CHECK(parse_size("0").value() == 0);
  CHECK(parse_size("65536").value() == 65536);
  CHECK(parse_size("512b").value() == 512);
  CHECK(parse_size("64k").value() == 65536);
  CHECK(parse_size("512M").value() == 512ull << 20);
  CHECK(parse_size("1G").value() == 1ull << 30);
  CHECK(parse_size("100G").value() == 100ull << 30);
  CHECK(parse_size("2T").value() == 2ull << 40);
  CHECK(parse_size("1.5G").value() == 3ull << 29);
  CHECK(parse_size("8E").value() == 8ull << 60);
}

TEST_CASE("bad sizes are refused with a reason", "[size]") {
  for (const char* bad : {"", "G", "1X", "1GG", "-1", "1.G", "16E", "99999999999999999999",
                          "0.5"}) {
    auto r = parse_size(bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == EINVAL);
    CHECK(r.error().message.find(bad) != std::string::npos);
  }
}

TEST_CASE("relative sizes for resize", "[size]") {
  auto grow = parse_size_change("+10G").value();
  CHECK(grow.apply(1ull << 30).value() == 11ull << 30);
  auto shrink = parse_size_change("-512M").value();
  CHECK(shrink.apply(1ull << 30).value() == 512ull << 20);
  CHECK_FALSE(shrink.apply(1ull << 20).ok());
  CHECK(parse_size_change("4G").value().apply(1).value() == 4ull << 30);
  CHECK_FALSE(parse_size_change("+1E").value().apply(UINT64_MAX - 5).ok());
}

TEST_CASE("arguments: short, grouped, long, values, positionals", "[args]") {
  std::vector<OptionSpec> specs = {{'c', nullptr, false}, {'p', nullptr, false},
                                   {'o', nullptr, true},  {'O', nullptr, true},
                                   {0, "output", true},   {0, "shrink", false}};
  auto parsed = parse_args({"-cp", "in.raw", "-o", "a=1", "-ob=2", "--output=json", "out",
                            "--shrink", "-O", "qcow2", "--", "-x"},
                           specs);
  REQUIRE(parsed.ok());
  CHECK(parsed->has("c"));
  CHECK(parsed->has("p"));
  CHECK(parsed->all("o") == std::vector<std::string>{"a=1", "b=2"});
  CHECK(parsed->last("output") == "json");
  CHECK(parsed->last("O") == "qcow2");
  CHECK(parsed->has("shrink"));
  CHECK(parsed->positionals == std::vector<std::string>{"in.raw", "out", "-x"});

  auto spaced = parse_args({"--output", "human"}, specs);
  REQUIRE(spaced.ok());
  CHECK(spaced->last("output") == "human");
}

TEST_CASE("argument errors name the option", "[args]") {
  std::vector<OptionSpec> specs = {{'o', nullptr, true}, {0, "shrink", false}, {0, "output", true}};
  auto unknown = parse_args({"-z"}, specs);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message == "unknown option '-z'");
  CHECK(parse_args({"--nope"}, specs).error().message == "unknown option '--nope'");
  CHECK(parse_args({"-o"}, specs).error().message == "option '-o' needs a value");
  CHECK(parse_args({"--output"}, specs).error().message == "option '--output' needs a value");
  CHECK(parse_args({"--shrink=yes"}, specs).error().message == "option '--shrink' takes no value");
}

TEST_CASE("option lists split into keys and values", "[args]") {
  auto kv = parse_key_values({"compat=1.1,cluster_size=4k", "lazy_refcounts", "compat=0.10"});
  REQUIRE(kv.ok());
  CHECK(kv->at("compat") == "0.10");
  CHECK(kv->at("cluster_size") == "4k");
  CHECK(kv->at("lazy_refcounts") == "on");
  CHECK_FALSE(parse_key_values({"a=1,,b=2"}).ok());
  CHECK_FALSE(parse_key_values({"=1"}).ok());
  CHECK(parse_on_off("x", "off").value() == false);
  CHECK_FALSE(parse_on_off("x", "maybe").ok());
}

TEST_CASE("JSON writer: pretty layout as qemu-img, escaping", "[json]") {
  JsonWriter json;
  json.begin_object().field("virtual-size", uint64_t{1073741824}).field("dirty-flag", false);
  json.key("snapshots").begin_array().begin_object().field("name", "a\"b\\c\n").end_object().end_array();
  json.key("empty").begin_array().end_array();
  json.end_object();
  CHECK(json.str() ==
        "{\n"
        "    \"virtual-size\": 1073741824,\n"
        "    \"dirty-flag\": false,\n"
        "    \"snapshots\": [\n"
        "        {\n"
        "            \"name\": \"a\\\"b\\\\c\\n\"\n"
        "        }\n"
        "    ],\n"
        "    \"empty\": []\n"
        "}");
  JsonWriter compact(false);
  compact.begin_object().field("start", uint64_t{0}).field("data", true).end_object();
  CHECK(compact.str() == "{\"start\": 0, \"data\": true}");
}

TEST_CASE("JSON strings stay valid for control bytes and invalid UTF-8", "[json]") {
  CHECK(json_quote(std::string("\x01", 1)) == "\"\\u0001\"");
  CHECK(json_quote("\xff" "a") == "\"\\u00ffa\"");
  CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(json_quote("\xc3") == "\"\\u00c3\"");  // truncated sequence
}

TEST_CASE("human sizes as qemu-img prints them", "[format]") {
  CHECK(human_size(0) == "0 B");
  CHECK(human_size(512) == "512 B");
  CHECK(human_size(1ull << 30) == "1 GiB");
  CHECK(human_size(1310720) == "1.25 MiB");
  CHECK(human_size(3420160) == "3.26 MiB");
  CHECK(hex(0x50000) == "0x50000");
  CHECK(hex(0) == "0");
  CHECK(percent(16, 16384) == "0.10");
}

namespace {

std::vector<uint8_t> read_device(BlockDevice& dev) {
  std::vector<uint8_t> out(dev.info().size);
  REQUIRE(dev.read(0, ByteSpan(out)).ok());
  return out;
}

// A source with data, a short zero run inside data, long zero runs and holes.
std::shared_ptr<MemoryDevice> make_source(uint64_t size) {
  auto src = std::make_shared<MemoryDevice>(size);
  std::mt19937_64 rng(7);
  std::vector<uint8_t> data(3 << 20);
  for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);
  std::memset(data.data() + 100000, 0, 1024);        // short run: written
  std::memset(data.data() + (1 << 20), 0, 256 << 10);  // long run: skipped
  REQUIRE(src->write(1 << 20, ConstByteSpan(data)).ok());
  std::vector<uint8_t> tail(4096, 0xab);
  REQUIRE(src->write(size - 4096, ConstByteSpan(tail)).ok());
  return src;
}

}  // namespace

TEST_CASE("copy pipeline copies every byte and skips long zero runs", "[pipeline]") {
  const uint64_t size = 16 << 20;
  auto src = make_source(size);
  for (auto [threads, in_order] : {std::pair{1u, true}, {4u, true}, {4u, false}}) {
    auto dst = std::make_shared<MemoryDevice>(size);
    CopyPipelineOptions options;
    options.threads = threads;
    options.in_order = in_order;
    uint64_t last_done = 0, last_total = 0;
    options.progress = [&](uint64_t done, uint64_t total) {
      CHECK(done >= last_done);
      last_done = done;
      last_total = total;
    };
    REQUIRE(run_copy_pipeline(*src, *dst, options).ok());
    CHECK(read_device(*dst) == read_device(*src));
    CHECK(last_done == size);
    CHECK(last_total == size);
    // The long zero run inside the data was not written: it is still a hole.
    auto extents = dst->extents((2 << 20) + (64 << 10), 128 << 10).value();
    REQUIRE_FALSE(extents.empty());
    CHECK(extents.front().kind != ExtentKind::data);
  }
}

TEST_CASE("copy pipeline with -S 0 writes every byte", "[pipeline]") {
  const uint64_t size = 4 << 20;
  auto src = std::make_shared<MemoryDevice>(size);
  auto dst = std::make_shared<MemoryDevice>(size);
  CopyPipelineOptions options;
  options.min_sparse = 0;
  REQUIRE(run_copy_pipeline(*src, *dst, options).ok());
  auto extents = dst->extents(0, size).value();
  REQUIRE_FALSE(extents.empty());
  CHECK(extents.front().kind == ExtentKind::data);
}

TEST_CASE("copy pipeline reports a read error with its offset and stops", "[pipeline]") {
  const uint64_t size = 8 << 20;
  auto src = make_source(size);
  auto dst = std::make_shared<MemoryDevice>(size);
  auto faulty = std::make_shared<FaultyDevice>(src, false);
  faulty->fail_range(2 << 20, 4096, EIO, FaultOp::read);
  CopyPipelineOptions options;
  options.threads = 3;
  auto st = run_copy_pipeline(*faulty, *dst, options);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == EIO);
  CHECK(st.error().message.find("reading the source") != std::string::npos);
}

TEST_CASE("copy pipeline refuses a destination smaller than the source", "[pipeline]") {
  auto src = std::make_shared<MemoryDevice>(1 << 20);
  auto dst = std::make_shared<MemoryDevice>(1 << 19);
  auto st = run_copy_pipeline(*src, *dst, {});
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ERANGE);
}

TEST_CASE("copy pipeline compresses clusters on threads and stores them in order", "[pipeline]") {
  const uint64_t size = (8 << 20) + 1000;  // a short last cluster
  auto src = make_source(size);
  // One cluster of one repeated byte "compresses" to that byte.
  std::vector<uint8_t> uniform(65536, 0x5a);
  REQUIRE(src->write(6 << 20, ConstByteSpan(uniform)).ok());
  auto dst = std::make_shared<MemoryDevice>(size);
  std::mutex mutex;
  std::vector<uint64_t> stored;
  CopyPipelineOptions options;
  options.threads = 4;
  options.granule = 65536;
  std::atomic<bool> short_cluster_seen{false};
  options.compress_cluster = [&](ConstByteSpan cluster) -> Result<std::vector<uint8_t>> {
    if (cluster.size() != 65536) short_cluster_seen = true;  // the short last one comes padded
    bool same = std::all_of(cluster.begin(), cluster.end(), [&](uint8_t b) { return b == cluster[0]; });
    return same ? std::vector<uint8_t>{cluster[0]} : std::vector<uint8_t>{};
  };
  options.store_packed = [&](uint64_t offset, ConstByteSpan packed) -> Status {
    std::lock_guard lock(mutex);
    REQUIRE(packed.size() == 1);
    REQUIRE(offset % 65536 == 0);
    stored.push_back(offset);
    std::vector<uint8_t> cluster(std::min<uint64_t>(65536, size - offset), packed[0]);
    return dst->write(offset, ConstByteSpan(cluster));
  };
  REQUIRE(run_copy_pipeline(*src, *dst, options).ok());
  CHECK(read_device(*dst) == read_device(*src));
  CHECK_FALSE(short_cluster_seen);
  CHECK(stored == std::vector<uint64_t>{6 << 20});  // only the uniform cluster packed
  // Zero clusters were neither compressed nor written.
  auto extents = dst->extents(0, 1 << 20).value();
  REQUIRE_FALSE(extents.empty());
  CHECK(extents.front().kind != ExtentKind::data);
}

TEST_CASE("copy pipeline stores packed clusters in source order", "[pipeline]") {
  const uint64_t size = 16 << 20;
  auto src = std::make_shared<MemoryDevice>(size);
  std::vector<uint8_t> ones(size, 1);
  REQUIRE(src->write(0, ConstByteSpan(ones)).ok());
  auto dst = std::make_shared<MemoryDevice>(size);
  std::vector<uint64_t> stored;
  CopyPipelineOptions options;
  options.threads = 4;
  options.granule = 65536;
  options.compress_cluster = [](ConstByteSpan) -> Result<std::vector<uint8_t>> {
    return std::vector<uint8_t>{1};
  };
  options.store_packed = [&](uint64_t offset, ConstByteSpan) -> Status {
    stored.push_back(offset);  // one call at a time, by contract
    return {};
  };
  REQUIRE(run_copy_pipeline(*src, *dst, options).ok());
  REQUIRE(stored.size() == size / 65536);
  CHECK(std::is_sorted(stored.begin(), stored.end()));
}

TEST_CASE("copy pipeline reports a compression error with its offset", "[pipeline]") {
  auto src = make_source(4 << 20);
  auto dst = std::make_shared<MemoryDevice>(4 << 20);
  CopyPipelineOptions options;
  options.compress_cluster = [](ConstByteSpan) -> Result<std::vector<uint8_t>> {
    return make_error(ENOMEM, "no memory");
  };
  options.store_packed = [](uint64_t, ConstByteSpan) -> Status { return {}; };
  // One thread: the first data cluster fails first. With more, any may.
  options.threads = 1;
  auto st = run_copy_pipeline(*src, *dst, options);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == ENOMEM);
  CHECK(st.error().message.find("compressing offset 1048576") != std::string::npos);
  options.threads = 4;
  auto parallel = run_copy_pipeline(*src, *dst, options);
  REQUIRE_FALSE(parallel.ok());
  CHECK(parallel.error().code == ENOMEM);
  CHECK(parallel.error().message.find("compressing offset ") != std::string::npos);
}
