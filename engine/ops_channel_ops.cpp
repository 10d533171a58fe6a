// ops::concat, ops::split and ops::channel_shuffle: channel-dimension data movement for NCHW (or N x C) tensors,
// built on the channel_copy / channel_shuffle kernels. Their backwards are the same moves in reverse.
#include <numeric>

#include "engine/ops_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.h"

namespace islkd::ops {

using namespace detail;

namespace {

// Elements per channel: product of the dims after dim 1 (1 for N x C tensors).
int64_t inner_size(const Tensor& t) {
  int64_t hw = 1;
  for (int64_t d = 2; d < t.dim(); ++d) hw *= t.size(d);
  return hw;
}

void copy_channels(bool cuda, int64_t N, int64_t HW, const Tensor& src, int64_t src_c0, const Tensor& dst,
                   int64_t dst_c0, int64_t nc) {
  if (cuda)
    cuda::channel_copy(N, HW, src.data(), src.size(1), src_c0, dst.data(), dst.size(1), dst_c0, nc);
  else
    cpu::channel_copy(N, HW, src.data(), src.size(1), src_c0, dst.data(), dst.size(1), dst_c0, nc);
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs_in) {
  ISLKD_CHECK(!xs_in.empty(), "concat: needs at least one tensor");
  std::vector<Tensor> xs;
  for (const Tensor& t : xs_in) xs.push_back(t.to_plain());
  const Tensor& first = xs[0];
  ISLKD_CHECK(first.dim() >= 2, "concat: tensors need at least 2 dimensions, got ", shape_str(first.shape()));
  int64_t C = 0;
  for (const Tensor& t : xs) {
    check_same_device("concat", {&first, &t});
    ISLKD_CHECK(t.dtype() == DType::F32, "concat: tensors must be float32");
    Shape a = first.shape(), b = t.shape();
    ISLKD_CHECK(a.size() == b.size(), "concat: shapes ", shape_str(a), " and ", shape_str(b), " differ in rank");
    a[1] = b[1] = 0;
    ISLKD_CHECK(a == b, "concat: shapes ", shape_str(first.shape()), " and ", shape_str(t.shape()),
                " differ outside dimension 1");
    C += t.size(1);
  }
  Shape ys = first.shape();
  ys[1] = C;
  Tensor y = Tensor::empty(ys, first.device());
  const int64_t N = first.size(0), HW = inner_size(first);
  const bool cuda = first.is_cuda();
  int64_t c0 = 0;
  for (const Tensor& t : xs) {
    copy_channels(cuda, N, HW, t, 0, y, c0, t.size(1));
    c0 += t.size(1);
  }
  if (needs_grad(xs)) {
    record("concat", xs, {y}, [xs, N, HW, cuda](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      int64_t off = 0;
      for (const Tensor& t : xs) {
        if (t.requires_grad()) {
          Tensor dx = Tensor::empty(t.shape(), t.device());
          copy_channels(cuda, N, HW, dy, off, dx, 0, t.size(1));
          accumulate_grad(t, dx);
        }
        off += t.size(1);
      }
    });
  }
  return y;
}

std::vector<Tensor> split(const Tensor& x_in, const std::vector<int64_t>& channels) {
  Tensor x = x_in.to_plain();
  ISLKD_CHECK(x.defined() && x.dim() >= 2, "split: input needs at least 2 dimensions, got ",
              x.defined() ? shape_str(x.shape()) : "undefined");
  ISLKD_CHECK(x.dtype() == DType::F32, "split: input must be float32");
  int64_t total = 0;
  for (int64_t c : channels) {
    ISLKD_CHECK(c >= 0, "split: negative channel count ", c, " in ", shape_str(channels));
    total += c;
  }
  ISLKD_CHECK(total == x.size(1), "split: channel counts ", shape_str(channels), " sum to ", total,
              " but input ", shape_str(x.shape()), " has ", x.size(1), " channels");
  const int64_t N = x.size(0), HW = inner_size(x);
  const bool cuda = x.is_cuda();
  std::vector<Tensor> ys;
  int64_t c0 = 0;
  for (int64_t c : channels) {
    Shape s = x.shape();
    s[1] = c;
    Tensor y = Tensor::empty(s, x.device());
    copy_channels(cuda, N, HW, x, c0, y, 0, c);
    ys.push_back(y);
    c0 += c;
  }
  if (needs_grad({&x})) {
    record("split", {x}, ys, [x, channels, N, HW, cuda](const std::vector<Tensor>& g) {
      // Outputs nobody used have no gradient: their channels stay zero.
      Tensor dx = Tensor::zeros(x.shape(), x.device());
      int64_t off = 0;
      for (size_t i = 0; i < channels.size(); ++i) {
        if (g[i].defined()) copy_channels(cuda, N, HW, g[i].to_plain(), 0, dx, off, channels[i]);
        off += channels[i];
      }
      accumulate_grad(x, dx);
    });
  }
  return ys;
}

Tensor channel_shuffle(const Tensor& x_in, int64_t groups) {
  Tensor x = x_in.to_plain();
  ISLKD_CHECK(x.defined() && x.dim() >= 2, "channel_shuffle: input needs at least 2 dimensions, got ",
              x.defined() ? shape_str(x.shape()) : "undefined");
  ISLKD_CHECK(x.dtype() == DType::F32, "channel_shuffle: input must be float32");
  ISLKD_CHECK(groups > 0 && x.size(1) % groups == 0, "channel_shuffle: ", x.size(1), " channels of input ",
              shape_str(x.shape()), " do not split into ", groups, " groups");
  const int64_t N = x.size(0), C = x.size(1), HW = inner_size(x);
  Tensor y = Tensor::empty(x.shape(), x.device());
  if (x.is_cuda())
    cuda::channel_shuffle(N, C, HW, groups, x.data(), y.data(), false);
  else
    cpu::channel_shuffle(N, C, HW, groups, x.data(), y.data(), false);
  if (needs_grad({&x})) {
    record("channel_shuffle", {x}, {y}, [x, N, C, HW, groups](const std::vector<Tensor>& g) {
      const Tensor dy = g[0].to_plain();
      Tensor dx = Tensor::empty(x.shape(), x.device());
      if (x.is_cuda())
        cuda::channel_shuffle(N, C, HW, groups, dy.data(), dx.data(), true);
      else
        cpu::channel_shuffle(N, C, HW, groups, dy.data(), dx.data(), true);
      accumulate_grad(x, dx);
    });
  }
  return y;
}

}  // namespace islkd::ops
