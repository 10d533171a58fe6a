// Atomic writes and their guards: target type check, the per-target advisory lock, stale temporary cleanup.
#include "engine/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "kernels/common/error.h"
#include "kernels/common/regular_file.h"

namespace islkd {

namespace {

std::string parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// Locks this process holds through OutputLock, by the lock file's (device, inode). flock() locks belong to an open
// file description, so a second OutputLock on the same file in this process would refuse its own owner: a write
// under a lock the process already holds goes ahead without taking it again.
std::mutex g_held_mu;
std::set<std::pair<unsigned long long, unsigned long long>> g_held;

bool held_by_this_process(const std::string& target) {
  struct stat st;
  if (::stat(lock_path_for(target).c_str(), &st) != 0) return false;
  std::lock_guard<std::mutex> lock(g_held_mu);
  return g_held.count({static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino)}) > 0;
}

std::string read_holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "unknown" : s;
}

}  // namespace

void check_output_path(const std::string& path) {
  ISLKD_CHECK(!path.empty(), "empty output path");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    ISLKD_CHECK(S_ISREG(st.st_mode), "refusing to write '", path, "': it is ", file_kind_name(st.st_mode),
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

std::string lock_path_for(const std::string& target) { return target + ".lock"; }

OutputLock::OutputLock(const std::string& target) : lock_path_(lock_path_for(target)) {
  // The holder unlinks the file on release; an acquirer that locked the unlinked inode sees a different (or no)
  // file at the path and tries again on the new one.
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ISLKD_CHECK(fd >= 0, "cannot create the lock file '", lock_path_, "' for '", target, "': ", std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      const std::string holder = read_holder_pid(fd);
      ::close(fd);
      ISLKD_CHECK(e != EWOULDBLOCK, "'", target, "' is being written by another process (pid ", holder,
                  " holds '", lock_path_, "'); stop it or give this run another output path");
      ISLKD_FAIL("cannot lock '", lock_path_, "' for '", target, "': ", std::strerror(e));
    }
    struct stat mine, now;
    ::fstat(fd, &mine);
    if (::stat(lock_path_.c_str(), &now) != 0 || now.st_ino != mine.st_ino || now.st_dev != mine.st_dev) {
      ::close(fd);
      ISLKD_CHECK(attempt < 100, "cannot lock '", lock_path_, "' for '", target,
                  "': it keeps being removed and recreated");
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      // The pid is only a hint for the other writer's error message; the lock itself is held.
    }
    fd_ = fd;
    dev_ = static_cast<unsigned long long>(mine.st_dev);
    ino_ = static_cast<unsigned long long>(mine.st_ino);
    std::lock_guard<std::mutex> lock(g_held_mu);
    g_held.insert({dev_, ino_});
    return;
  }
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  {
    std::lock_guard<std::mutex> lock(g_held_mu);
    g_held.erase({dev_, ino_});
  }
  ::unlink(lock_path_.c_str());  // while still locked: see the constructor
  ::close(fd_);
}

int remove_stale_temporaries(const std::string& target) {
  namespace fs = std::filesystem;
  const std::string prefix = fs::path(target).filename().string() + ".tmp.";
  const fs::path dir = parent_dir(target);
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code rm_ec;
    if (fs::remove(it->path(), rm_ec)) ++removed;
  }
  return removed;
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  check_output_path(path);
  std::unique_ptr<OutputLock> lock;
  if (!held_by_this_process(path)) lock = std::make_unique<OutputLock>(path);
  remove_stale_temporaries(path);
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
