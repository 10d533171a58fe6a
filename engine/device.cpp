// select_device: the single place that turns --device into a Device, with one log line giving the reason.
#include "engine/device.h"

#include <iostream>

#include "kernels/common/error.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd {

Device select_device(const std::string& choice, std::ostream& log) {
  ISLKD_CHECK(choice == "auto" || choice == "cpu" || choice == "cuda", "--device must be auto, cpu or cuda, got '",
              choice, "'");
  if (choice == "cpu") {
    log << "islkd: device cpu (requested)\n";
    return Device::CPU;
  }
  std::string why;
  const bool available = cuda::device_available(&why);
  if (choice == "cuda") {
    ISLKD_CHECK(available, "--device cuda: no usable CUDA device (", why, "); use --device cpu or auto");
    log << "islkd: device cuda (requested; " << why << ")\n";
    return Device::CUDA;
  }
  if (available) {
    log << "islkd: device cuda (auto: " << why << ")\n";
    return Device::CUDA;
  }
  log << "islkd: device cpu (auto: no CUDA device: " << why << ")\n";
  return Device::CPU;
}

Device select_device(const std::string& choice) { return select_device(choice, std::cerr); }

}  // namespace islkd
