#include "qcowkit/testing/explorer_targets.hpp"

#include "qcowkit/aligned_device.hpp"

namespace qcowkit::testing {

Status ExplorerTarget::write_compressed(BlockDevice&, uint64_t, ConstByteSpan) {
  return make_error(ENOTSUP, "write_compressed: this target has no compressed clusters");
}

Result<std::shared_ptr<BlockDevice>> Qcow2Target::open(std::shared_ptr<BlockDevice> disk) {
  QK_ASSIGN_OR_RETURN(auto image, Qcow2Image::open(std::move(disk), options_));
  return std::shared_ptr<BlockDevice>(std::move(image));
}

Result<std::vector<uint8_t>> Qcow2Target::recover(std::shared_ptr<MemoryDevice> disk, bool clean) {
  // Default options, not the run's: a reboot need not use a tiny cache.
  auto opened = Qcow2Image::open(disk, Qcow2OpenOptions{});
  if (!opened.ok()) return with_context(std::move(opened).error(), "the image does not open");
  Qcow2Image& image = **opened;
  QK_ASSIGN_OR_RETURN(CheckReport report, image.check(RepairMode::none));
  if (report.corruptions || report.check_errors || (clean && report.leaks)) {
    std::string what = "check finds " + std::to_string(report.corruptions) + " corruptions, " +
                       std::to_string(report.check_errors) + " errors, " +
                       std::to_string(report.leaks) + " leaks";
    for (size_t i = 0; i < report.messages.size() && i < 8; ++i) what += "\n  " + report.messages[i];
    return make_error(EIO, what);
  }
  std::vector<uint8_t> guest(image.info().size);
  QK_TRY(image.read(0, guest));
  return guest;
}

Status Qcow2Target::write_compressed(BlockDevice& guest, uint64_t offset, ConstByteSpan data) {
  auto* image = dynamic_cast<Qcow2Image*>(&guest);
  if (!image) return ExplorerTarget::write_compressed(guest, offset, data);
  return image->write_compressed(offset, data);
}

Result<std::shared_ptr<BlockDevice>> CacheTarget::open(std::shared_ptr<BlockDevice> disk) {
  QK_ASSIGN_OR_RETURN(auto cache, BlockCache::create(std::move(disk), options_));
  return std::shared_ptr<BlockDevice>(std::move(cache));
}

Result<std::vector<uint8_t>> CacheTarget::recover(std::shared_ptr<MemoryDevice> disk, bool) {
  std::vector<uint8_t> bytes(disk->info().size);
  QK_TRY(disk->read(0, bytes));
  return bytes;
}

Result<std::shared_ptr<BlockDevice>> Qcow2OnSectorsTarget::open(std::shared_ptr<BlockDevice> disk) {
  return Qcow2Target::open(AlignedDevice::over(std::move(disk)));
}

Result<std::shared_ptr<BlockDevice>> Qcow2OverCacheTarget::open(std::shared_ptr<BlockDevice> disk) {
  QK_ASSIGN_OR_RETURN(auto cache, BlockCache::create(std::move(disk), cache_));
  return Qcow2Target::open(std::shared_ptr<BlockDevice>(std::move(cache)));
}

}  // namespace qcowkit::testing
