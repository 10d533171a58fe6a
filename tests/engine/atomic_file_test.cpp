// write_file_atomic's guard: a target that is not a regular file is refused (never replaced by the rename).
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <string>

#include "engine/atomic_file.h"
#include "engine/safetensors.h"
#include "kernels/common/error.h"

using namespace islkd;

namespace {

// A fresh directory per test, so the directory scans see only what the test made.
std::string fresh_dir(const std::string& tag) {
  std::string tmpl = ::testing::TempDir() + "/islkd_atomic_" + tag + "_XXXXXX";
  char* d = ::mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr) << tmpl;
  return tmpl;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(WriteFileAtomic, RefusesAFifoAndLeavesItAFifo) {
  const std::string dir = fresh_dir("fifo");
  const std::string fifo = dir + "/out.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const std::string msg = error_of([&] { write_file_atomic(fifo, "abc", 3); });
  EXPECT_NE(msg.find(fifo), std::string::npos) << msg;
  EXPECT_NE(msg.find("FIFO"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  struct stat st;
  ASSERT_EQ(::stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  std::filesystem::remove_all(dir);
}

TEST(WriteFileAtomic, RefusesADirectoryAndLeavesItADirectory) {
  const std::string dir = fresh_dir("dir");
  const std::string target = dir + "/checkpoints";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  const std::string msg = error_of([&] { safetensors::save(target, safetensors::File{}); });
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
  EXPECT_TRUE(std::filesystem::is_directory(target));
  std::filesystem::remove_all(dir);
}

TEST(WriteFileAtomic, CheckOutputPathRefusesACharacterDeviceAndAMissingDirectory) {
  std::string msg = error_of([] { check_output_path("/dev/null"); });
  EXPECT_NE(msg.find("/dev/null"), std::string::npos) << msg;
  EXPECT_NE(msg.find("character device"), std::string::npos) << msg;
  msg = error_of([] { check_output_path("/nonexistent-dir/x.safetensors"); });
  EXPECT_NE(msg.find("/nonexistent-dir"), std::string::npos) << msg;
  EXPECT_NO_THROW(check_output_path(::testing::TempDir() + "/islkd_atomic_not_there_yet"));
}

TEST(WriteFileAtomic, OverwritesARegularFileAndLeavesNoTemporaryFile) {
  const std::string dir = fresh_dir("regular");
  const std::string target = dir + "/metrics.jsonl";
  write_file_atomic(target, "one\n", 4);
  write_file_atomic(target, "two\n", 4);
  EXPECT_EQ(read_text(target), "two\n");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++entries;
    EXPECT_EQ(e.path().filename().string(), "metrics.jsonl");
  }
  EXPECT_EQ(entries, 1);
  std::filesystem::remove_all(dir);
}
