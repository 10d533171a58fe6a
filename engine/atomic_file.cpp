// Atomic writes and their guard: the target type check.
#include "engine/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/common/error.h"

namespace islkd {

namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

void check_output_path(const std::string& path) {
  ISLKD_CHECK(!path.empty(), "empty output path");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    ISLKD_CHECK(S_ISREG(st.st_mode), "refusing to write '", path, "': it is ", file_kind(st.st_mode),
                ", not a regular file (the atomic write would replace it); give a file path");
    return;
  }
  const int e = errno;
  ISLKD_CHECK(e == ENOENT, "cannot write '", path, "': ", std::strerror(e));
  const std::string dir = parent_dir(path);
  ISLKD_CHECK(::stat(dir.c_str(), &st) == 0, "cannot write '", path, "': its directory '", dir,
              "' does not exist (", std::strerror(errno), ")");
  ISLKD_CHECK(S_ISDIR(st.st_mode), "cannot write '", path, "': '", dir, "' is not a directory");
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  check_output_path(path);
  // Same directory as the target so rename() stays on one filesystem and is atomic.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  ISLKD_CHECK(f != nullptr, "cannot create '", tmp, "' to write '", path, "': ", std::strerror(errno));
  bool ok = size == 0 || std::fwrite(data, 1, size, f) == size;
  ok = ok && std::fflush(f) == 0;
  ok = ok && ::fsync(::fileno(f)) == 0;
  const int err = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    ISLKD_FAIL("cannot write '", path, "' (", size, " bytes): ", std::strerror(err ? err : errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    ISLKD_FAIL("cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
}

}  // namespace islkd
