#include "qcowkit/byte_sink.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace qcowkit {

Status FdByteSink::write(ConstByteSpan bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int code = errno;
      return make_error(code, std::string("write failed: ") + std::strerror(code));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace qcowkit
