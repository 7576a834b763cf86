#include "qcow2/image_impl.hpp"
namespace qcowkit {
Result<CheckReport> Qcow2Image::Impl::check(RepairMode) { return make_error(ENOTSUP, "check: todo"); }
Status Qcow2Image::Impl::rebuild_refcounts_locked(CheckReport*) { return make_error(ENOTSUP, "rebuild: todo"); }
Status Qcow2Image::Impl::compact() { return make_error(ENOTSUP, "compact: todo"); }
}
