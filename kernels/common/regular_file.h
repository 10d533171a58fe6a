// The one way the project reads a whole input file: it must be a regular file (after symlinks) no larger than a
// cap the caller states, checked before a byte is allocated. A symlink to /dev/zero, a FIFO, a directory or a
// device is refused with one line instead of hanging or reading without end; a sparse or huge file is refused by
// its size instead of exhausting memory. Opened with O_NONBLOCK so that opening a FIFO cannot block.
// Header-only and dependent on nothing but islkd::Error, so the format parsers and their fuzzers use it too.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/common/error.h"

namespace islkd {

// Caps by kind of file (bytes). Dataset files: SVHN's extra_32x32.mat is 1.3 GB, CIFAR-100's train.bin 155 MB.
constexpr uint64_t kMaxDataFileBytes = uint64_t(4) << 30;
constexpr uint64_t kMaxWeightsFileBytes = uint64_t(4) << 30;  // safetensors checkpoints, .npy inputs
constexpr uint64_t kMaxImageFileBytes = uint64_t(64) << 20;   // one ImageFolder image (CINIC-10's are ~2 KB)
constexpr uint64_t kMaxConfigFileBytes = uint64_t(1) << 20;   // a TOML config

// "a FIFO", "a directory", ... for the refusal message.
inline const char* file_kind_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Whole file into memory. `what` names the kind of file in errors ("dataset file", "weights", ...).
inline std::vector<uint8_t> read_regular_file(const std::string& path, uint64_t max_bytes, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ISLKD_CHECK(fd >= 0, path, ": cannot open ", what, " (", std::strerror(errno), ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  ISLKD_CHECK(::fstat(fd, &st) == 0, path, ": cannot stat ", what, " (", std::strerror(errno), ")");
  ISLKD_CHECK(S_ISREG(st.st_mode), path, ": ", what, " is ", file_kind_name(st.st_mode),
              ", not a regular file; refusing to read it");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  ISLKD_CHECK(size <= max_bytes, path, ": ", what, " is ", size, " bytes, over the limit of ", max_bytes,
              " for this kind of file");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    ISLKD_CHECK(n >= 0, path, ": read error after ", got, " bytes of ", what, " (", std::strerror(errno), ")");
    if (n == 0) break;  // shrank while we read
    got += static_cast<size_t>(n);
  }
  ISLKD_CHECK(got == bytes.size(), path, ": ", what, " changed size while being read (", got, " of ", size,
              " bytes)");
  uint8_t extra;
  ssize_t more;
  while ((more = ::read(fd, &extra, 1)) < 0 && errno == EINTR) {
  }
  ISLKD_CHECK(more == 0, path, ": ", what, " grew while being read (beyond its ", size, " bytes)");
  return bytes;
}

// Whole text file (a config) as a string, same checks.
inline std::string read_regular_text_file(const std::string& path, uint64_t max_bytes, const char* what) {
  std::vector<uint8_t> b = read_regular_file(path, max_bytes, what);
  return std::string(b.begin(), b.end());
}

}  // namespace islkd
