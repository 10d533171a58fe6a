// Device choice, made once per run from `--device auto|cpu|cuda` (ops then dispatch on each tensor's device).
#pragma once
#include <cstddef>
#include <iosfwd>
#include <string>

#include "engine/tensor.h"

namespace islkd {

// "cpu" -> CPU; "cuda" -> CUDA, or an islkd::Error saying why there is no usable device; "auto" -> CUDA when a
// driver and a device exist (cuda::device_available), else CPU. Never crashes on a machine without a driver.
// Writes one line saying what was chosen and why to `log` (stderr in the one-argument form).
Device select_device(const std::string& choice, std::ostream& log);
Device select_device(const std::string& choice);

// What the data pipeline needs from a GPU device, asked of the engine rather than of a backend: page-locked host
// buffers, copies queued on the copy stream, and the compute stream's wait for them.
namespace device {
void* pinned_host_alloc(size_t bytes);
void pinned_host_free(void* p);
void copy_to_device_prefetch(void* dst, const void* src_pinned, size_t bytes);  // on the copy stream, no host wait
void wait_prefetch();  // the next op on the compute stream sees every prefetch copy queued so far
void synchronize();    // the host waits for the compute and copy streams
}  // namespace device

}  // namespace islkd
