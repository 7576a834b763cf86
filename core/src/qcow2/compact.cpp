#include "qcow2/image_impl.hpp"
namespace qcowkit {
Status Qcow2Image::Impl::compact() { return make_error(ENOTSUP, "compact: not yet implemented"); }
}
