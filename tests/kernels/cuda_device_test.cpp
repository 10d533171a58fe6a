// The CUDA backend's host side under the emulator + shim (and on a GPU, in islkd_tests_gpu): device discovery,
// the caching allocator (reuse, peak bytes, no cudaMalloc in the steady state), copies and prefetch, the backend's
// counters, and error messages with call, file and line.
#include <cstdlib>
#include <string>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/vendor.h"
#include "kernels/emu/shim/shim.h"
#include "tests/common/test_util.h"
#include "tests/kernels/cuda_test_util.h"

using namespace islkd;
using test::DeviceVec;

#if defined(ISLKD_SANITIZE) || defined(__SANITIZE_ADDRESS__)
constexpr bool kPools = false;  // the allocator passes straight through under the sanitizer
#else
constexpr bool kPools = true;
#endif

TEST(CudaDevice, BuildReportsWhetherItIsEmulated) { EXPECT_EQ(cuda::is_emulated(), bool(ISLKD_TEST_EMULATED)); }

TEST(CudaDevice, UnavailableWithoutDriverOrEnvironmentAndNeverThrows) {
  ISLKD_SKIP_UNLESS_EMULATED("a real device cannot be hidden by ISLKD_EMULATED_CUDA");
  unsetenv("ISLKD_EMULATED_CUDA");
  std::string why;
  EXPECT_FALSE(cuda::device_available(&why));
  EXPECT_NE(why.find("cudaGetDeviceCount"), std::string::npos) << why;
  EXPECT_NE(why.find("ISLKD_EMULATED_CUDA=1"), std::string::npos) << why;
  EXPECT_FALSE(cuda::device_available(nullptr));
  // The failed query leaves no sticky error behind for the next launch check.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  // Without a device, memory cannot be had either (the loader relies on that to report the missing device).
  EXPECT_THROW(cuda::pinned_host_free(cuda::pinned_host_malloc(64)), Error);
  cudaGetLastError();
  test::enable_emulated_cuda();  // for the tests that follow in this process
}

TEST(CudaDevice, AvailableWithEmulationEnabled) {
  test::enable_emulated_cuda();
  std::string why;
  EXPECT_TRUE(cuda::device_available(&why)) << why;
  EXPECT_NE(why.find(cuda::is_emulated() ? "emulated" : "CUDA device found"), std::string::npos) << why;
  cuda::set_device(0);
  cuda::synchronize();
}

// ISLKD_EMULATED_CUDA=N shows N devices (a data-parallel test's ranks each take the one of their local rank);
// the ordinals past N stay invalid.
TEST(CudaDevice, EmulatedDeviceCountFollowsTheVariable) {
  ISLKD_SKIP_UNLESS_EMULATED("the emulated device count is the shim's");
  setenv("ISLKD_EMULATED_CUDA", "2", 1);
  int count = 0;
  EXPECT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 2);
  cuda::set_device(1);
  EXPECT_THROW(cuda::set_device(2), Error);
  cudaGetLastError();
  setenv("ISLKD_EMULATED_CUDA", "banana", 1);
  EXPECT_NE(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 0);
  cudaGetLastError();
  test::enable_emulated_cuda();
  cuda::set_device(0);
}

TEST(CudaDevice, BadOrdinalIsAnErrorNamingCallFileAndLine) {
  try {
    cuda::set_device(3);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaSetDevice(ordinal)"), std::string::npos) << m;
    EXPECT_NE(m.find("invalid device ordinal"), std::string::npos) << m;
    EXPECT_NE(m.find("device.cpp:"), std::string::npos) << m;
  }
  cudaGetLastError();  // the failed call's error must not surface at the next launch check
}

TEST(CudaDevice, CublasAndCudnnChecksNameCallFileAndLine) {
  try {
    ISLKD_CUBLAS_CHECK(cublasSetStream(nullptr, nullptr));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cublasSetStream(nullptr, nullptr)"), std::string::npos) << m;
    EXPECT_NE(m.find("CUBLAS_STATUS_NOT_INITIALIZED"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda_device_test.cpp:"), std::string::npos) << m;
  }
  try {
    ISLKD_CUDNN_CHECK(cudnnSetStream(nullptr, nullptr));
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudnnSetStream(nullptr, nullptr)"), std::string::npos) << m;
    EXPECT_NE(m.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda_device_test.cpp:"), std::string::npos) << m;
  }
}

TEST(CudaAllocator, ReusesFreedBlocksOfTheSameSizeClass) {
  void* a = cuda::device_malloc(1000);
  cuda::device_free(a);
  void* b = cuda::device_malloc(900);  // same 1 KiB class
  if (kPools) {
    EXPECT_EQ(a, b);
  }
  cuda::device_free(b);
}

TEST(CudaAllocator, SteadyStateMakesNoCudaMalloc) {
  auto step = [] {  // the allocation pattern of a training step, sizes repeating
    void* x = cuda::device_malloc(3 * 32 * 32 * 4 * 4);
    void* h = cuda::device_malloc(16 * 32 * 32 * 4 * 4);
    void* g = cuda::device_malloc(10 * 4 * 4);
    cuda::device_free(h);
    void* w = cuda::device_malloc(5 << 20);
    cuda::device_free(x);
    cuda::device_free(w);
    cuda::device_free(g);
  };
  step();
  const cuda::Counters before = cuda::counters();
#if ISLKD_TEST_EMULATED
  const auto shim_before = islkd_cuda_shim::stats();
#endif
  for (int i = 0; i < 10; ++i) step();
  const cuda::Counters d = cuda::counters_delta(before, cuda::counters());
  EXPECT_EQ(d.cuda_mallocs, kPools ? 0u : 40u);
#if ISLKD_TEST_EMULATED
  const auto shim_after = islkd_cuda_shim::stats();  // what the runtime saw agrees with the backend's count
  EXPECT_EQ(shim_after.mallocs - shim_before.mallocs, d.cuda_mallocs);
  EXPECT_EQ(shim_after.frees - shim_before.frees, kPools ? 0u : 40u);
#endif
}

TEST(CudaAllocator, TracksInUseAndPeakBytesAndReleasesTheCache) {
  cuda::allocator_release_cached();
  const size_t base = cuda::allocator_in_use_bytes();
  void* a = cuda::device_malloc(1 << 20);
  void* b = cuda::device_malloc(3 << 20);
  EXPECT_GE(cuda::allocator_in_use_bytes() - base, size_t(4) << 20);
  EXPECT_GE(cuda::allocator_peak_bytes(), cuda::allocator_in_use_bytes());
  const size_t peak = cuda::allocator_peak_bytes();
  cuda::device_free(a);
  cuda::device_free(b);
  EXPECT_EQ(cuda::allocator_in_use_bytes(), base);
  EXPECT_EQ(cuda::allocator_peak_bytes(), peak);  // the peak stays
#if ISLKD_TEST_EMULATED
  const auto live = islkd_cuda_shim::stats().live_bytes;
  cuda::allocator_release_cached();
  if (kPools) {
    EXPECT_LE(islkd_cuda_shim::stats().live_bytes + (size_t(4) << 20), live);
  }
#else
  cuda::allocator_release_cached();
#endif
}

TEST(CudaAllocator, FreeOfAForeignPointerIsIgnoredNotACrash) {
  int x = 0;
  cuda::device_free(&x);
  cuda::device_free(nullptr);
  SUCCEED();
}

TEST(CudaMemory, CopiesRoundTripAndPrefetchLandsBeforeUse) {
  const std::vector<float> v = test::random_vector(1000, 2);
  DeviceVec<float> a(v), b(1000);
  cuda::memcpy_d2d(b.get(), a.get(), 1000 * 4);
  EXPECT_TRUE(test::all_close(b.host(), v, 0, 0));

  float* pinned = static_cast<float*>(cuda::pinned_host_malloc(1000 * 4));
  for (int i = 0; i < 1000; ++i) pinned[i] = static_cast<float>(i);
  cuda::memcpy_h2d_prefetch(b.get(), pinned, 1000 * 4);
  cuda::wait_prefetch();
  const std::vector<float> got = b.host();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], static_cast<float>(i));
  cuda::pinned_host_free(pinned);
}

// Staged uploads from pageable memory: the source may be overwritten as soon as the call returns, more uploads
// than staging buffers in a row still land in order, the compute stream sees them, and none counts as pageable.
TEST(CudaMemory, StagedUploadsLandWithoutAPageableCopyOrAHostWait) {
  constexpr int kUploads = 20;  // more than the backend's staging buffers
  std::vector<DeviceVec<float>*> dst;
  const cuda::Counters c0 = cuda::counters();
  std::vector<float> src(333);
  for (int k = 0; k < kUploads; ++k) {
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(k * 1000 + static_cast<int>(i));
    dst.push_back(new DeviceVec<float>(src.size()));
    cuda::memcpy_h2d_staged(dst.back()->get(), src.data(), src.size() * sizeof(float));
    std::fill(src.begin(), src.end(), -1.0f);  // the caller reuses its buffer at once
  }
  DeviceVec<float> sum(std::vector<float>(333, 0.0f));
  for (int k = 0; k < kUploads; ++k) cuda::accumulate(dst[static_cast<size_t>(k)]->get(), sum.get(), 333);
  const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
  EXPECT_EQ(d.h2d_pinned, static_cast<uint64_t>(kUploads));
  EXPECT_EQ(d.h2d_pageable, static_cast<uint64_t>(kUploads + 1));  // the DeviceVecs' own uploads only
  EXPECT_EQ(d.host_syncs, 0u);
  const std::vector<float> got = sum.host();
  for (size_t i = 0; i < got.size(); i += 37) {
    double want = 0;
    for (int k = 0; k < kUploads; ++k) want += k * 1000 + static_cast<double>(i);
    ASSERT_EQ(got[i], static_cast<float>(want)) << i;
  }
  for (auto* p : dst) delete p;
}

TEST(CudaMemory, CopyFromAHostPointerAsDeviceIsAnError) {
  ISLKD_SKIP_UNLESS_EMULATED("with unified addressing a real runtime may accept a host source for a D2H copy");
  std::vector<float> host(16, 1.0f), other(16);
  try {
    cuda::memcpy_d2h(other.data(), host.data(), 16 * 4);  // src is not device memory
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaMemcpyAsync"), std::string::npos) << m;
    EXPECT_NE(m.find("invalid argument"), std::string::npos) << m;
  }
  cudaGetLastError();  // the failed copy's error must not surface at the next launch check
}

// The backend's counters: what each kind of call adds, pinned and pageable copies told apart, a device-to-host
// copy counted as the host sync it is, and only cache misses of the allocator counted as cudaMalloc.
TEST(CudaCounters, CountLaunchesCopiesSyncsAndMallocs) {
  const std::vector<float> v = test::random_vector(256, 5);
  DeviceVec<float> a(v), b(256);  // before the snapshot: their cudaMalloc and pageable upload are not counted
  float* pinned = static_cast<float*>(cuda::pinned_host_malloc(256 * 4));
  for (int i = 0; i < 256; ++i) pinned[i] = static_cast<float>(i);
  std::vector<float> pageable(256);
  cuda::allocator_release_cached();
  const cuda::Counters c0 = cuda::counters();
  cuda::fill(b.get(), 1.0f, 256);                       // 1 launch
  cuda::add(a.get(), b.get(), b.get(), 256);            // 1 launch
  cuda::memcpy_h2d(a.get(), pageable.data(), 256 * 4);  // pageable H2D
  cuda::memcpy_h2d(a.get(), pinned + 128, 128 * 4);     // pinned H2D (inside the pinned block)
  cuda::memcpy_h2d_prefetch(a.get(), pinned, 256 * 4);  // pinned H2D on the copy stream
  cuda::wait_prefetch();
  cuda::memcpy_d2d(b.get(), a.get(), 256 * 4);
  cuda::memcpy_d2h(pinned, b.get(), 256 * 4);   // pinned D2H + 1 sync
  cuda::memcpy_d2h(pageable.data(), b.get(), 16);  // pageable D2H + 1 sync
  cuda::synchronize();                           // 1 sync (both streams, one wait)
  void* fresh = cuda::device_malloc(3 << 20);    // a cache miss: 1 cudaMalloc of its size class
  cuda::device_free(fresh);
  void* again = cuda::device_malloc(3 << 20);    // a hit
  cuda::device_free(again);
  const cuda::Counters d = cuda::counters_delta(c0, cuda::counters());
  EXPECT_EQ(d.kernel_launches, 2u);
  EXPECT_EQ(d.cudnn_calls, 0u);
  EXPECT_EQ(d.cublas_calls, 0u);
  EXPECT_EQ(d.h2d_pageable, 1u);
  EXPECT_EQ(d.h2d_pinned, 2u);
  EXPECT_EQ(d.h2d_bytes, 256u * 4 + 128 * 4 + 256 * 4);
  EXPECT_EQ(d.d2d, 1u);
  EXPECT_EQ(d.d2d_bytes, 256u * 4);
  EXPECT_EQ(d.d2h_pinned, 1u);
  EXPECT_EQ(d.d2h_pageable, 1u);
  EXPECT_EQ(d.d2h_bytes, 256u * 4 + 16);
  EXPECT_EQ(d.host_syncs, 3u);
#if defined(ISLKD_SANITIZE) || defined(__SANITIZE_ADDRESS__)
  EXPECT_EQ(d.cuda_mallocs, 2u);  // under ASan the allocator does not pool (kernels/cuda/device.cpp): both miss
#else
  EXPECT_EQ(d.cuda_mallocs, 1u);
#endif
  EXPECT_GE(d.cuda_malloc_bytes, size_t(3) << 20);
  EXPECT_EQ(pageable[3], 3.0f);  // the last copies brought the pinned values back
  cuda::pinned_host_free(pinned);
  // A freed pinned block is pageable again for the classification.
  const cuda::Counters c1 = cuda::counters();
  cuda::memcpy_h2d(a.get(), pageable.data(), 64);
  EXPECT_EQ(cuda::counters_delta(c1, cuda::counters()).h2d_pageable, 1u);
}

TEST(CudaShim, CudaFreeOfAnUnknownPointerIsAnError) {
  ISLKD_SKIP_UNLESS_EMULATED("the shim's validation of cudaFree");
  int x = 0;
  EXPECT_EQ(cudaFree(&x), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read and cleared
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 100), cudaSuccess);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue);  // double free
  cudaGetLastError();
}

TEST(CudaShim, SgemmIsColumnMajor) {
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  // A = [[1, 2], [3, 4]] column-major is {1, 3, 2, 4}; B = I; C = A^T * B = [[1, 3], [2, 4]] -> {1, 2, 3, 4}.
  DeviceVec<float> A(std::vector<float>{1, 3, 2, 4}), B(std::vector<float>{1, 0, 0, 1}), C(4);
  const float one = 1.0f, zero = 0.0f;
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, 2, &one, A.get(), 2, B.get(), 2, &zero, C.get(), 2),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_TRUE(test::all_close(C.host(), {1, 2, 3, 4}, 0, 0));
  // A 2 x 3 result with ldc 3 (padding row untouched): C = A(2x2) * B(2x3)
  DeviceVec<float> B3(std::vector<float>{1, 0, 0, 1, 1, 1}), C3(std::vector<float>(9, 7.0f));
  ASSERT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 3, 2, &one, A.get(), 2, B3.get(), 2, &zero, C3.get(), 3),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_TRUE(test::all_close(C3.host(), {1, 3, 7, 2, 4, 7, 3, 7, 7}, 0, 0));
  EXPECT_EQ(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, A.get(), 1, B.get(), 2, &zero, C.get(), 2),
            CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  EXPECT_EQ(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}
