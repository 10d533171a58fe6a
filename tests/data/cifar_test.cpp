// CIFAR-10 / CIFAR-100 binary readers: C++-written fixtures value by value, archive folder layout, malformed files.
#include <functional>

#include "data/dataset.h"
#include "data/formats.h"
#include "kernels/common/error.h"
#include "tests/common/test_util.h"
#include "tests/data/fixtures.h"

using namespace islkd;
using namespace islkd::data;

namespace {

using test::error_of;

void expect_fixture(const Dataset& ds, int64_t first, int64_t n, int classes, bool coarse = false) {
  ASSERT_EQ(ds.size(), n);
  ASSERT_EQ(ds.channels(), 3);
  ASSERT_EQ(ds.height(), 32);
  ASSERT_EQ(ds.width(), 32);
  std::vector<uint8_t> px(3 * 32 * 32);
  for (int64_t i = 0; i < n; ++i) {
    int32_t want = test::fixture_label(first + i, classes);
    if (coarse) want %= 20;
    EXPECT_EQ(ds.label(i), want) << "instance " << i;
    ds.read(i, px.data());
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x)
          ASSERT_EQ(px[(c * 32 + y) * 32 + x], test::fixture_pixel(first + i, c, y, x)) << "instance " << i;
  }
}

}  // namespace

TEST(CifarReader, Cifar10TrainConcatenatesTheFiveBatchesInOrder) {
  test::TempDir dir;
  for (int b = 1; b <= 5; ++b)
    test::write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), test::cifar_records((b - 1) * 3, 3, false));
  test::write_bytes(dir / "test_batch.bin", test::cifar_records(0, 4, false));
  auto train = open_dataset("cifar10", dir.str(), "train");
  expect_fixture(*train, 0, 15, 10);
  expect_fixture(*open_dataset("cifar10", dir.str(), "test"), 0, 4, 10);
  EXPECT_EQ(train->class_names()[0], "airplane");
  EXPECT_EQ(train->normalization().name, "cifar10");
  EXPECT_TRUE(train->hflip_makes_sense());
}

TEST(CifarReader, AcceptsTheParentOfTheArchiveFolder) {
  test::TempDir dir;
  test::write_bytes(dir / "cifar-10-batches-bin/test_batch.bin", test::cifar_records(0, 2, false));
  expect_fixture(*open_dataset("cifar10", dir.str(), "test"), 0, 2, 10);
}

TEST(CifarReader, Cifar100FineByDefaultCoarseOnRequest) {
  test::TempDir dir;
  test::write_bytes(dir / "cifar-100-binary/train.bin", test::cifar_records(0, 6, true));
  auto fine = open_dataset("cifar100", dir.str(), "train");
  expect_fixture(*fine, 0, 6, 100);
  EXPECT_EQ(fine->num_classes(), 100);
  EXPECT_EQ(fine->class_names()[99], "worm");
  DatasetOptions o;
  o.cifar100_coarse = true;
  auto coarse = open_dataset("cifar100", dir.str(), "train", o);
  expect_fixture(*coarse, 0, 6, 100, true);
  EXPECT_EQ(coarse->num_classes(), 20);
}

TEST(CifarReader, TruncatedFileNamesFileAndLastRecordOffset) {
  test::TempDir dir;
  auto rec = test::cifar_records(0, 3, false);
  rec.resize(rec.size() - 1);
  test::write_bytes(dir / "test_batch.bin", rec);
  std::string msg = error_of([&] { open_dataset("cifar10", dir.str(), "test"); });
  EXPECT_NE(msg.find("test_batch.bin: size 9218 is not a whole number of 3073-byte CIFAR records"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("offset 6146"), std::string::npos) << msg;
}

TEST(CifarReader, LabelOutOfRangeNamesRecordAndOffset) {
  auto rec = test::cifar_records(0, 3, false);
  rec[2 * 3073] = 10;
  RawImages out;
  std::string msg = error_of([&] { parse_cifar(rec.data(), rec.size(), "b.bin", 1, 0, 10, out); });
  EXPECT_NE(msg.find("b.bin: label 10 of record 2 (offset 6146)"), std::string::npos) << msg;
  auto rec100 = test::cifar_records(0, 2, true);
  rec100[3074 + 1] = 100;
  RawImages out100;
  msg = error_of([&] { parse_cifar(rec100.data(), rec100.size(), "train.bin", 2, 1, 100, out100); });
  EXPECT_NE(msg.find("train.bin: label 100 of record 1 (offset 3075)"), std::string::npos) << msg;
}

TEST(CifarReader, MissingBatchFileIsNamed) {
  test::TempDir dir;
  for (int b = 1; b <= 4; ++b)
    test::write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), test::cifar_records(0, 1, false));
  std::string msg = error_of([&] { open_dataset("cifar10", dir.str(), "train"); });
  EXPECT_NE(msg.find("data_batch_5.bin: cannot open"), std::string::npos) << msg;
}

TEST(CifarReader, EmptyFileAndUnknownSplitAreErrors) {
  test::TempDir dir;
  test::write_bytes(dir / "test_batch.bin", {});
  EXPECT_NE(error_of([&] { open_dataset("cifar10", dir.str(), "test"); }).find("empty CIFAR file"), std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset("cifar10", dir.str(), "valid"); }).find("not 'valid'"), std::string::npos);
}
