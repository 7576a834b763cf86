// QEMU-compatible image locks between two opens of one file. Separate open()
// calls are separate open file descriptions, which is what OFD locks tell
// apart, so two descriptors in one process behave like two processes.
#include <fcntl.h>
#include <unistd.h>

#include "qcowkit/image_lock.hpp"
#include "test_support.hpp"

using namespace qcowkit;

namespace {

struct Fd {
  explicit Fd(const std::string& path) : fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    REQUIRE(fd >= 0);
  }
  ~Fd() { ::close(fd); }
  int fd;
};

}  // namespace

TEST_CASE("image lock: a writer excludes a second writer and a reader", "[image_lock]") {
  test::TempDir dir;
  const auto path = dir.file("disk.qcow2");
  Fd a(path), b(path);
  REQUIRE_OK(lock_image(a.fd, path, ImageLockMode::writer));

  auto second_writer = lock_image(b.fd, path, ImageLockMode::writer);
  REQUIRE_FALSE(second_writer.ok());
  CHECK(second_writer.error().code == EBUSY);
  CHECK(second_writer.error().message.find(path) != std::string::npos);

  auto reader = lock_image(b.fd, path, ImageLockMode::reader);
  REQUIRE_FALSE(reader.ok());
  CHECK(reader.error().code == EBUSY);
}

TEST_CASE("image lock: readers share, and keep writers out", "[image_lock]") {
  test::TempDir dir;
  const auto path = dir.file("disk.qcow2");
  Fd a(path), b(path), c(path);
  REQUIRE_OK(lock_image(a.fd, path, ImageLockMode::reader));
  REQUIRE_OK(lock_image(b.fd, path, ImageLockMode::reader));
  auto writer = lock_image(c.fd, path, ImageLockMode::writer);
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.error().message.find("in use") != std::string::npos);
}

TEST_CASE("image lock: a failed attempt leaves nothing locked", "[image_lock]") {
  test::TempDir dir;
  const auto path = dir.file("disk.qcow2");
  auto a = std::make_unique<Fd>(path);
  Fd b(path), c(path);
  REQUIRE_OK(lock_image(a->fd, path, ImageLockMode::reader));
  REQUIRE_FALSE(lock_image(b.fd, path, ImageLockMode::writer).ok());
  a.reset();  // closing the descriptor drops its locks
  // b's failed attempt must not have left bytes behind that block c.
  REQUIRE_OK(lock_image(c.fd, path, ImageLockMode::writer));
}

TEST_CASE("image lock: unlock lets the next writer in", "[image_lock]") {
  test::TempDir dir;
  const auto path = dir.file("disk.qcow2");
  Fd a(path), b(path);
  REQUIRE_OK(lock_image(a.fd, path, ImageLockMode::writer));
  REQUIRE_FALSE(lock_image(b.fd, path, ImageLockMode::writer).ok());
  REQUIRE_OK(unlock_image(a.fd, path));
  REQUIRE_OK(lock_image(b.fd, path, ImageLockMode::writer));
}
