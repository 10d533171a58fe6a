// Atomic file writing (temporary name in the target's directory, flush + fsync, rename) and the checks around
// it: a target that is not a regular file is refused, stale temporaries of dead writers are removed, and one
// writer at a time holds an advisory lock on `<target>.lock`.
#pragma once
#include <cstddef>
#include <string>

namespace islkd {

// Throws islkd::Error when `path` cannot be a target of write_file_atomic: it exists and is not a regular file
// (a directory, FIFO, device or socket, which rename() would replace or fail on), or its directory is missing.
// Apps call it at start so a bad --out fails before any work; write_file_atomic calls it before each write.
void check_output_path(const std::string& path);

// The lock file that guards writes of `target`: "<target>.lock".
std::string lock_path_for(const std::string& target);

// An exclusive advisory lock (flock) on lock_path_for(target), which holds the owner's pid. Throws an Error naming
// the other writer's pid when another process holds it. The lock file is removed on release; an acquirer whose
// file was removed under it (it locked an unlinked inode) retries, so the removal is safe. An app holds one for each
// output for the whole run; write_file_atomic takes one for the write unless this process already holds it.
class OutputLock {
 public:
  explicit OutputLock(const std::string& target);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  std::string lock_path_;
  int fd_ = -1;
  unsigned long long dev_ = 0, ino_ = 0;
};

// Removes "<target>.tmp.<pid>" files next to `target` whose writer is dead (kill(pid, 0) fails with ESRCH): what a
// killed writer leaves behind. Returns how many were removed. Writers in another pid namespace look dead: keep one
// target per namespace.
int remove_stale_temporaries(const std::string& target);

// Writes bytes to `path` atomically: check_output_path, the lock, remove_stale_temporaries, then
// "<path>.tmp.<pid>" in the same directory (fwrite, fflush + fsync) renamed over `path`.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace islkd
