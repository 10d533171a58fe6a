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

namespace device {
void* pinned_host_alloc(size_t bytes) { return cuda::pinned_host_malloc(bytes); }
void pinned_host_free(void* p) { cuda::pinned_host_free(p); }
void copy_to_device_prefetch(void* dst, const void* src_pinned, size_t bytes) {
  cuda::memcpy_h2d_prefetch(dst, src_pinned, bytes);
}
void wait_prefetch() { cuda::wait_prefetch(); }
void synchronize() { cuda::synchronize(); }
}  // namespace device

}  // namespace islkd
