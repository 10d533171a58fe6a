// write_file_atomic's guards: a target that is not a regular file is refused (never replaced by the rename),
// temporaries of dead writers are removed, and a second writer is refused by the lock, naming the first.
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
#include "tests/common/test_util.h"

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

using test::error_of;

// A pid no process has: probed downwards from the top of the pid range.
long dead_pid() {
  long max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> max;
  for (long pid = max - 1; pid > 1; --pid)
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return pid;
  return -1;
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

TEST(WriteFileAtomic, OverwritesARegularFileAndLeavesNoTemporaryOrLockFile) {
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

TEST(WriteFileAtomic, RemovesTheTemporaryOfADeadWriterAtTheNextWriteAndKeepsALiveOnes) {
  const std::string dir = fresh_dir("stale");
  const std::string target = dir + "/model.safetensors";
  const long dead = dead_pid();
  ASSERT_GT(dead, 1);
  const std::string stale = target + ".tmp." + std::to_string(dead);
  const std::string live = target + ".tmp." + std::to_string(::getppid());  // this test's parent: alive
  const std::string other = dir + "/other.safetensors.tmp." + std::to_string(dead);  // not this target's
  for (const std::string& p : {stale, live, other}) std::ofstream(p) << "partial";
  write_file_atomic(target, "x", 1);
  EXPECT_FALSE(std::filesystem::exists(stale)) << stale;
  EXPECT_TRUE(std::filesystem::exists(live)) << live;
  EXPECT_TRUE(std::filesystem::exists(other)) << other;
  EXPECT_EQ(read_text(target), "x");
  std::filesystem::remove_all(dir);
}

TEST(WriteFileAtomic, ASecondWriterIsRefusedByTheLockNamingTheHolder) {
  const std::string dir = fresh_dir("lock");
  const std::string target = dir + "/model.safetensors";
  // The other writer, played by a raw flock() on its own open file description, with its pid in the file.
  const int fd = ::open(lock_path_for(target).c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(::getpid());
  ASSERT_EQ(::write(fd, pid.data(), pid.size()), static_cast<ssize_t>(pid.size()));
  const std::string msg = error_of([&] { write_file_atomic(target, "x", 1); });
  EXPECT_NE(msg.find(target), std::string::npos) << msg;
  EXPECT_NE(msg.find("another process (pid " + pid), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(target));
  EXPECT_THROW(OutputLock{target}, Error);
  ::close(fd);  // the other writer ends: the lock is free again
  EXPECT_NO_THROW(write_file_atomic(target, "y", 1));
  EXPECT_EQ(read_text(target), "y");
  std::filesystem::remove_all(dir);
}

TEST(WriteFileAtomic, WritesUnderALockThisProcessHoldsGoAheadAndReleaseRemovesTheLockFile) {
  const std::string dir = fresh_dir("own_lock");
  const std::string target = dir + "/metrics.jsonl";
  {
    OutputLock held(target);  // what an app holds for the whole run
    EXPECT_TRUE(std::filesystem::exists(lock_path_for(target)));
    write_file_atomic(target, "1\n", 2);
    write_file_atomic(target, "2\n", 2);
  }
  EXPECT_EQ(read_text(target), "2\n");
  EXPECT_FALSE(std::filesystem::exists(lock_path_for(target)));
  { OutputLock again(target); }  // a released lock can be taken again
  std::filesystem::remove_all(dir);
}
