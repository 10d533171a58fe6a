// select_device: --device auto|cpu|cuda with one log line; auto falls back to the CPU without a device, cuda
// without one is an error that says why. (The emulated build's device is visible only with ISLKD_EMULATED_CUDA=1.)
#include <cstdlib>
#include <sstream>

#include "engine/device.h"
#include "tests/common/test_util.h"

using namespace islkd;

TEST(SelectDevice, CpuIsTakenAsRequested) {
  std::ostringstream log;
  EXPECT_EQ(select_device("cpu", log), Device::CPU);
  EXPECT_EQ(log.str(), "islkd: device cpu (requested)\n");
}

TEST(SelectDevice, AutoFallsBackToCpuWithTheReasonWhenNoDevice) {
  unsetenv("ISLKD_EMULATED_CUDA");
  std::ostringstream log;
  EXPECT_EQ(select_device("auto", log), Device::CPU);
  const std::string s = log.str();
  EXPECT_EQ(s.find("islkd: device cpu (auto: no CUDA device: "), 0u) << s;
  EXPECT_NE(s.find("cudaGetDeviceCount"), std::string::npos) << s;
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1) << "one line";
}

TEST(SelectDevice, CudaWithoutDeviceIsAnErrorSayingWhy) {
  unsetenv("ISLKD_EMULATED_CUDA");
  std::ostringstream log;
  try {
    select_device("cuda", log);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--device cuda: no usable CUDA device"), std::string::npos) << m;
    EXPECT_NE(m.find("--device cpu"), std::string::npos) << m;
  }
}

TEST(SelectDevice, AutoTakesTheEmulatedDeviceWhenEnabled) {
  setenv("ISLKD_EMULATED_CUDA", "1", 1);
  std::ostringstream log;
  EXPECT_EQ(select_device("auto", log), Device::CUDA);
  EXPECT_EQ(log.str().find("islkd: device cuda (auto: emulated"), 0u) << log.str();
  unsetenv("ISLKD_EMULATED_CUDA");
}

TEST(SelectDevice, UnknownChoiceIsAnError) {
  EXPECT_THROW(select_device("gpu"), Error);
}
