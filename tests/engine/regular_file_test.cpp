// read_regular_file: every reader's way in. A FIFO, a device (also behind a symlink), a directory or an oversized
// file is refused with one line naming the path, before any read (a FIFO must not block, /dev/zero must not be
// read without end).
#include "kernels/common/regular_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/common/test_util.h"

namespace islkd {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("islkd_regular_file_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(RegularFile, ReadsAWholeRegularFile) {
  TempDir d;
  const std::string p = (d.path / "a.bin").string();
  std::ofstream(p, std::ios::binary) << std::string("abc\0def", 7);
  std::vector<uint8_t> b = read_regular_file(p, 7, "test file");
  ASSERT_EQ(b.size(), 7u);
  EXPECT_EQ(b[3], 0);
  EXPECT_EQ(b[6], 'f');
}

TEST(RegularFile, AFileOverTheCapIsRefusedBySizeBeforeReading) {
  TempDir d;
  const std::string p = (d.path / "big.bin").string();
  { std::ofstream(p) << "12345678"; }
  fs::resize_file(p, uint64_t(1) << 40);  // sparse: 1 TiB claimed, nothing on disk
  const std::string msg = test::error_of([&] { read_regular_file(p, 1000, "dataset file"); });
  EXPECT_NE(msg.find("big.bin: dataset file is 1099511627776 bytes, over the limit of 1000"), std::string::npos)
      << msg;
}

TEST(RegularFile, AFifoIsRefusedWithoutBlocking) {
  TempDir d;
  const std::string p = (d.path / "pipe").string();
  ASSERT_EQ(::mkfifo(p.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = test::error_of([&] { read_regular_file(p, 1000, "dataset file"); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_NE(msg.find("pipe: dataset file is a FIFO (named pipe), not a regular file"), std::string::npos) << msg;
}

TEST(RegularFile, ASymlinkToDevZeroOrADirectoryIsRefused) {
  TempDir d;
  const fs::path link = d.path / "weights.safetensors";
  fs::create_symlink("/dev/zero", link);
  std::string msg = test::error_of([&] { read_regular_file(link.string(), uint64_t(4) << 30, "weights"); });
  EXPECT_NE(msg.find("weights.safetensors: weights is a character device, not a regular file"), std::string::npos)
      << msg;
  msg = test::error_of([&] { read_regular_file(d.path.string(), 1000, "dataset file"); });
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
  msg = test::error_of([&] { read_regular_file((d.path / "missing").string(), 1000, "dataset file"); });
  EXPECT_NE(msg.find("missing: cannot open dataset file (No such file or directory)"), std::string::npos) << msg;
}

}  // namespace
}  // namespace islkd
