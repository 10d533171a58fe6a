// Atomic file writing (temporary name in the target's directory, flush + fsync, rename) and the check before
// it: a target that is not a regular file is refused.
#pragma once
#include <cstddef>
#include <string>

namespace islkd {

// Throws islkd::Error when `path` cannot be a target of write_file_atomic: it exists and is not a regular file
// (a directory, FIFO, device or socket, which rename() would replace or fail on), or its directory is missing.
// Apps call it at start so a bad --out fails before any work; write_file_atomic calls it before each write.
void check_output_path(const std::string& path);

// Writes bytes to `path` atomically: check_output_path, then "<path>.tmp.<pid>" in the same directory (fwrite,
// fflush + fsync) renamed over `path`.
void write_file_atomic(const std::string& path, const void* data, size_t size);

}  // namespace islkd
