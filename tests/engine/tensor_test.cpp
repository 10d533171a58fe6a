// Tensor sizes: element and byte counts are computed with checked arithmetic, so a shape whose size overflows
// int64 is an error naming the shape, never a wrapped (tiny) allocation that is then written out of bounds.
#include <gtest/gtest.h>

#include <string>

#include "engine/tensor.h"
#include "kernels/common/error.h"

using namespace islkd;

TEST(TensorShape, NumelOfAShapeThatOverflowsIsAnErrorNamingTheShape) {
  EXPECT_EQ(shape_numel({int64_t(1) << 31, int64_t(1) << 31}), int64_t(1) << 62);
  try {
    shape_numel({int64_t(1) << 62, 64});  // 2^68 wraps to 0
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("4611686018427387904, 64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("overflows"), std::string::npos) << msg;
  }
  EXPECT_THROW(shape_numel({3, int64_t(1) << 62}), Error);
}

TEST(TensorShape, EmptyTensorWhoseByteSizeOverflowsIsAnErrorNotAnAllocation) {
  // 2^62 elements fit in int64, their 2^64 bytes do not.
  try {
    Tensor::empty({int64_t(1) << 31, int64_t(1) << 31});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte size"), std::string::npos) << e.what();
  }
}
