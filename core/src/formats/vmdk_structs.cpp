#include "formats/vmdk_structs.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "util/endian_le.hpp"

namespace qcowkit::formats::vmdk {
namespace {

constexpr size_t kVersion = 4, kFlags = 8, kCapacity = 12, kGrain = 20, kDescOffset = 28,
                 kDescSize = 36, kGtEntriesAt = 44, kRgdOffset = 48, kGdOffset = 56,
                 kOverhead = 64, kUnclean = 72, kCheckBytes = 73, kCompress = 77;
constexpr char kCheck[4] = {'\n', ' ', '\r', '\n'};

// The quoted or bare value of `key = value` on a descriptor line.
std::string value_of(const std::string& line) {
  auto eq = line.find('=');
  std::string v = line.substr(eq + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
  while (!v.empty() && (v.back() == ' ' || v.back() == '\r' || v.back() == '\t')) v.pop_back();
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

std::string key_of(const std::string& line) {
  auto eq = line.find('=');
  if (eq == std::string::npos) return {};
  std::string k = line.substr(0, eq);
  while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
  return k;
}

// `RW 8192 FLAT "name" 0`: access, size, type, then a quoted file name and
// an optional offset.
Result<ExtentLine> parse_extent_line(const std::string& line, size_t number) {
  auto bad = [&](const std::string& why) {
    return make_error(EINVAL, "VMDK descriptor line " + std::to_string(number) + ": " + why);
  };
  ExtentLine e;
  std::istringstream in(line);
  std::string sectors;
  in >> e.access >> sectors >> e.type;
  if (sectors.empty() || e.type.empty()) return bad("an extent line needs access, size and type");
  char* end = nullptr;
  errno = 0;
  e.sectors = std::strtoull(sectors.c_str(), &end, 10);
  if (errno || *end || sectors[0] == '-' || e.sectors > (uint64_t{1} << 40))
    return bad("extent size '" + sectors + "' is not a number of sectors up to 2^40");
  if (e.type == "ZERO") return e;
  const size_t open = line.find('"');
  const size_t close = open == std::string::npos ? open : line.find('"', open + 1);
  if (close == std::string::npos) return bad("the extent's file name is not quoted");
  e.file = line.substr(open + 1, close - open - 1);
  if (e.file.empty()) return bad("the extent's file name is empty");
  std::string rest = line.substr(close + 1);
  std::istringstream tail(rest);
  std::string offset;
  if (tail >> offset) {
    e.has_offset = true;
    e.offset = std::strtoull(offset.c_str(), &end, 10);
    if (*end || offset[0] == '-' || e.offset > (uint64_t{1} << 40))
      return bad("extent offset '" + offset + "' is not a sector number up to 2^40");
  }
  return e;
}

}  // namespace

Result<Header> parse_header(const uint8_t* b) {
  if (load_le32(b) != kMagic) return make_error(EINVAL, "not a VMDK sparse extent (no KDMV magic)");
  Header h;
  h.version = load_le32(b + kVersion);
  h.flags = load_le32(b + kFlags);
  h.capacity = load_le64(b + kCapacity);
  h.grain = load_le64(b + kGrain);
  h.descriptor_offset = load_le64(b + kDescOffset);
  h.descriptor_size = load_le64(b + kDescSize);
  h.gt_entries = load_le32(b + kGtEntriesAt);
  h.rgd_offset = load_le64(b + kRgdOffset);
  h.gd_offset = load_le64(b + kGdOffset);
  h.overhead = load_le64(b + kOverhead);
  h.compress_algorithm = load_le16(b + kCompress);
  if (h.version < 1 || h.version > 3)
    return make_error(ENOTSUP, "VMDK version " + std::to_string(h.version) +
                                   " is not supported (1 to 3 are)");
  if ((h.flags & kFlagNewlineTest) && std::memcmp(b + kCheckBytes, kCheck, 4) != 0)
    return make_error(EINVAL, "VMDK header: the newline check bytes are wrong (the file was "
                              "damaged by a text-mode transfer)");
  return h;
}

void build_header(const Header& h, uint8_t* b) {
  std::memset(b, 0, 512);
  store_le32(b, kMagic);
  store_le32(b + kVersion, h.version);
  store_le32(b + kFlags, h.flags);
  store_le64(b + kCapacity, h.capacity);
  store_le64(b + kGrain, h.grain);
  store_le64(b + kDescOffset, h.descriptor_offset);
  store_le64(b + kDescSize, h.descriptor_size);
  store_le32(b + kGtEntriesAt, h.gt_entries);
  store_le64(b + kRgdOffset, h.rgd_offset);
  store_le64(b + kGdOffset, h.gd_offset);
  store_le64(b + kOverhead, h.overhead);
  b[kUnclean] = 0;
  std::memcpy(b + kCheckBytes, kCheck, 4);
  store_le16(b + kCompress, h.compress_algorithm);
}

Result<Descriptor> parse_descriptor(const std::string& text) {
  Descriptor d;
  bool have_type = false;
  std::istringstream in(text);
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.size() > kMaxDescriptorLine)
      return make_error(EINVAL, "VMDK descriptor line " + std::to_string(number) + " is " +
                                    std::to_string(line.size()) + " bytes long (at most " +
                                    std::to_string(kMaxDescriptorLine) + " are read)");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const std::string key = key_of(line);
    if (key == "createType") {
      d.create_type = value_of(line);
      have_type = true;
    } else if (key == "CID") {
      d.cid = uint32_t(std::strtoul(value_of(line).c_str(), nullptr, 16));
    } else if (key == "parentCID") {
      d.parent_cid = uint32_t(std::strtoul(value_of(line).c_str(), nullptr, 16));
    } else if (key == "parentFileNameHint") {
      d.has_parent = true;
    } else if (key.empty() && (line.rfind("RW ", 0) == 0 || line.rfind("RDONLY ", 0) == 0 ||
                               line.rfind("NOACCESS ", 0) == 0)) {
      if (d.extents.size() >= kMaxExtents)
        return make_error(EINVAL, "VMDK descriptor names more than " + std::to_string(kMaxExtents) +
                                      " extents");
      QK_ASSIGN_OR_RETURN(ExtentLine e, parse_extent_line(line, number));
      if (e.type == "SPARSE")
        ++d.sparse_extents;
      else
        ++d.other_extents;
      d.extents.push_back(std::move(e));
    }
  }
  if (!have_type) return make_error(EINVAL, "VMDK descriptor has no createType");
  if (d.sparse_extents + d.other_extents == 0)
    return make_error(EINVAL, "VMDK descriptor names no extent");
  return d;
}

std::string build_descriptor(const std::string& create_type, uint64_t sectors,
                             const std::string& file_name, uint32_t cid) {
  char cid_text[16];
  std::snprintf(cid_text, sizeof cid_text, "%08x", cid);
  // A geometry as qemu-img records it for IDE: 16 heads, 63 sectors.
  const uint64_t cylinders = sectors / (16 * 63);
  return "# Disk DescriptorFile\nversion=1\nCID=" + std::string(cid_text) +
         "\nparentCID=ffffffff\ncreateType=\"" + create_type +
         "\"\n\n# Extent description\nRW " + std::to_string(sectors) + " SPARSE \"" + file_name +
         "\"\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
         "ddb.geometry.cylinders = \"" + std::to_string(cylinders) +
         "\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n"
         "ddb.adapterType = \"ide\"\nddb.toolsVersion = \"2147483647\"\n";
}

}  // namespace qcowkit::formats::vmdk
