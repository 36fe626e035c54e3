// CPU implementations of the four fused SAC primitives: a loop over rows calling the math in sac_math.h,
// parallel over fixed blocks of rows. Storage float32/float64/float16/bfloat16; math in float64 for float64
// inputs, float32 otherwise (at::opmath_type).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>

#include "ops.h"
#include "sac_math.h"

namespace fastsac {
namespace {

// Rows per parallel work item. Fixed (not derived from the thread count) so that the want_sum total, summed
// per block and then over blocks in order, is the same bit for bit whatever the number of threads.
constexpr int64_t kRowsPerBlock = 256;

int64_t num_blocks(int64_t rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

template <typename T>
math::Bounds<T> to_bounds(const BoundsArg& b) {
  return math::Bounds<T>{b.on, static_cast<T>(b.lo), static_cast<T>(b.half_range)};
}

template <typename T>
const T* opt_ptr(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<T>() : nullptr;
}

at::ScalarType compute_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Sum the per-block partials in order into a 0-dim tensor of the compute dtype.
template <typename acc_t>
Tensor sum_partials(const Tensor& partials) {
  const acc_t* p = partials.data_ptr<acc_t>();
  acc_t total = acc_t(0);
  for (int64_t i = 0; i < partials.numel(); ++i) total += p[i];
  Tensor out = at::empty({}, partials.options());
  *out.data_ptr<acc_t>() = total;
  return out;
}

}  // namespace

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd_cpu(const Tensor& mean, const Tensor& log_std,
                                                                const Tensor& noise, const OptTensor& scale,
                                                                const OptTensor& bias, BoundsArg bounds,
                                                                bool want_sum) {
  const int64_t N = mean.size(0), A = mean.size(1);
  Tensor action = at::empty_like(mean);
  Tensor log_prob = at::empty({N}, mean.options());
  const int64_t blocks = num_blocks(N);
  Tensor partials;  // per-block sums of the unrounded row values, only when want_sum
  if (want_sum) partials = at::empty({blocks}, mean.options().dtype(compute_type(mean.scalar_type())));
  OptTensor lp_sum;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mean.scalar_type(), "fastsac_squashed_gaussian_fwd_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* m = mean.data_ptr<scalar_t>();
    const scalar_t* s = log_std.data_ptr<scalar_t>();
    const scalar_t* n = noise.data_ptr<scalar_t>();
    const acc_t* sc = opt_ptr<acc_t>(scale);
    const acc_t* bi = opt_ptr<acc_t>(bias);
    const math::Bounds<acc_t> b = to_bounds<acc_t>(bounds);
    scalar_t* act = action.data_ptr<scalar_t>();
    scalar_t* lp = log_prob.data_ptr<scalar_t>();
    acc_t* part = want_sum ? partials.data_ptr<acc_t>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t r1 = std::min(N, (blk + 1) * kRowsPerBlock);
        acc_t block_sum = acc_t(0);
        for (int64_t r = blk * kRowsPerBlock; r < r1; ++r) {
          const int64_t o = r * A;
          const acc_t row_lp =
              math::squashed_gaussian_row_fwd<scalar_t, acc_t>(m + o, s + o, n + o, sc, bi, b, A, act + o);
          lp[r] = static_cast<scalar_t>(row_lp);
          block_sum += row_lp;
        }
        if (part != nullptr) part[blk] = block_sum;
      }
    });
    if (want_sum) lp_sum = sum_partials<acc_t>(partials);
  });
  return {action, log_prob, lp_sum};
}

std::tuple<Tensor, Tensor> squashed_gaussian_bwd_cpu(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                     const Tensor& mean, const Tensor& log_std,
                                                     const Tensor& noise, const OptTensor& scale,
                                                     BoundsArg bounds) {
  const int64_t N = mean.size(0), A = mean.size(1);
  Tensor d_mean = at::empty_like(mean);
  Tensor d_log_std = at::empty_like(mean);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mean.scalar_type(), "fastsac_squashed_gaussian_bwd_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* ga = grad_action.data_ptr<scalar_t>();
    const scalar_t* glp = grad_log_prob.data_ptr<scalar_t>();
    const scalar_t* m = mean.data_ptr<scalar_t>();
    const scalar_t* s = log_std.data_ptr<scalar_t>();
    const scalar_t* n = noise.data_ptr<scalar_t>();
    const acc_t* sc = opt_ptr<acc_t>(scale);
    const math::Bounds<acc_t> b = to_bounds<acc_t>(bounds);
    scalar_t* dm = d_mean.data_ptr<scalar_t>();
    scalar_t* ds = d_log_std.data_ptr<scalar_t>();
    at::parallel_for(0, num_blocks(N), 1, [&](int64_t b0, int64_t b1) {
      const int64_t r1 = std::min(N, b1 * kRowsPerBlock);
      for (int64_t r = b0 * kRowsPerBlock; r < r1; ++r) {
        const int64_t o = r * A;
        math::squashed_gaussian_row_bwd<scalar_t, acc_t>(ga + o, static_cast<acc_t>(glp[r]), m + o, s + o, n + o,
                                                         sc, b, A, dm + o, ds + o);
      }
    });
  });
  return {d_mean, d_log_std};
}

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd_cpu(const Tensor& logits, bool want_sum) {
  const int64_t N = logits.size(0), A = logits.size(1);
  Tensor probs = at::empty_like(logits);
  Tensor log_probs = at::empty_like(logits);
  Tensor entropy = at::empty({N}, logits.options());
  const int64_t blocks = num_blocks(N);
  Tensor partials;  // per-block sums of the unrounded row values, only when want_sum
  if (want_sum) partials = at::empty({blocks}, logits.options().dtype(compute_type(logits.scalar_type())));
  OptTensor entropy_sum;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_fwd_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* z = logits.data_ptr<scalar_t>();
    scalar_t* p = probs.data_ptr<scalar_t>();
    scalar_t* lp = log_probs.data_ptr<scalar_t>();
    scalar_t* h = entropy.data_ptr<scalar_t>();
    acc_t* part = want_sum ? partials.data_ptr<acc_t>() : nullptr;
    at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t r1 = std::min(N, (blk + 1) * kRowsPerBlock);
        acc_t block_sum = acc_t(0);
        for (int64_t r = blk * kRowsPerBlock; r < r1; ++r) {
          const int64_t o = r * A;
          const acc_t row_h = math::categorical_row_fwd<scalar_t, acc_t>(z + o, A, p + o, lp + o);
          h[r] = static_cast<scalar_t>(row_h);
          block_sum += row_h;
        }
        if (part != nullptr) part[blk] = block_sum;
      }
    });
    if (want_sum) entropy_sum = sum_partials<acc_t>(partials);
  });
  return {probs, log_probs, entropy, entropy_sum};
}

Tensor categorical_bwd_cpu(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                           const Tensor& logits) {
  const int64_t N = logits.size(0), A = logits.size(1);
  Tensor d_logits = at::empty_like(logits);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_bwd_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad_probs.data_ptr<scalar_t>();
    const scalar_t* glp = grad_log_probs.data_ptr<scalar_t>();
    const scalar_t* gh = grad_entropy.data_ptr<scalar_t>();
    const scalar_t* z = logits.data_ptr<scalar_t>();
    scalar_t* d = d_logits.data_ptr<scalar_t>();
    at::parallel_for(0, num_blocks(N), 1, [&](int64_t b0, int64_t b1) {
      const int64_t r1 = std::min(N, b1 * kRowsPerBlock);
      for (int64_t r = b0 * kRowsPerBlock; r < r1; ++r) {
        const int64_t o = r * A;
        math::categorical_row_bwd<scalar_t, acc_t>(gp + o, glp + o, static_cast<acc_t>(gh[r]), z + o, A, d + o);
      }
    });
  });
  return d_logits;
}

}  // namespace fastsac
