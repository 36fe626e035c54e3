// CPU implementations of the fused SAC primitives: a loop over rows calling the math in sac_math.h,
// parallel over fixed blocks of rows. Storage float32/float64/float16/bfloat16; math in float64 for float64
// inputs, float32 otherwise (at::opmath_type).
//
// float32 squashed Gaussian, built with AVX2 + FMA (CPU_CAPABILITY_AVX2, see fastsac/ops/cpu_build_flags.py):
// per block of rows, one vectorized pass (at::vec::Vectorized<float>, 8 lanes, Sleef exp/log1p as libtorch
// uses) over the block's flat rows*A elements with the formulas of sac_math.h (vec_sg.h), then a short scalar
// pass per row (the row's log-prob summed over j in order, scale/bias). The float32 categorical likewise
// (vec_cat.h: 8 rows per vector for narrow rows, one row at a time for wide ones, exp once per element). Every
// other dtype, and any build without those flags, runs the scalar row functions of sac_math.h.

// ATen's AVX2 vec headers (pulled in by every ATen header once CPU_CAPABILITY_AVX2 is defined) use F16C
// intrinsics: torch compiles its own AVX2 kernels with -mf16c, and so should this file (every AVX2 CPU has
// F16C). Where the build passed the AVX2 flags without -mf16c, GCC gets the feature here instead.
#if defined(CPU_CAPABILITY_AVX2) && !defined(__F16C__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("f16c")
#else
#error "fastsac: building csrc/ops_cpu.cpp with -DCPU_CAPABILITY_AVX2 needs -mf16c as well as -mavx2 -mfma"
#endif
#endif

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>

#include <algorithm>

#include "ops.h"
#include "sac_math.h"
#include "vec_cat.h"  // FASTSAC_VEC_CAT: the vectorized float32 categorical (AVX2 builds only)
#include "vec_sg.h"   // FASTSAC_VEC_SG: the vectorized float32 squashed Gaussian (AVX2 builds only)

namespace fastsac {
namespace {

// Rows per parallel work item. Fixed (not derived from the thread count) so that the want_sum total, summed
// per block and then over blocks in order, is the same bit for bit whatever the number of threads.
constexpr int64_t kRowsPerBlock = 256;

int64_t num_blocks(int64_t rows) { return (rows + kRowsPerBlock - 1) / kRowsPerBlock; }

// A forward over N rows: block(r0, r1) for each block of kRowsPerBlock rows, in parallel over blocks; it returns
// the sum of its rows' values in row order, kept in part[blk] where part is not null (the want_sum partials).
template <typename acc_t, typename Block>
void forward_blocks(int64_t N, acc_t* part, const Block& block) {
  at::parallel_for(0, num_blocks(N), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const acc_t sum = block(blk * kRowsPerBlock, std::min(N, (blk + 1) * kRowsPerBlock));
      if (part != nullptr) part[blk] = sum;
    }
  });
}

// A backward over N rows: rows(r0, r1) on whole blocks of rows, in parallel.
template <typename Rows>
void backward_blocks(int64_t N, const Rows& rows) {
  at::parallel_for(0, num_blocks(N), 1, [&](int64_t b0, int64_t b1) {
    rows(b0 * kRowsPerBlock, std::min(N, b1 * kRowsPerBlock));
  });
}

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

// The vectorized float32 squashed Gaussian (vec_sg.h) where the build has it: these overloads return false
// (the caller runs the scalar rows) for every other storage type, and for float32 too without FASTSAC_VEC_SG.
template <typename scalar_t, typename acc_t>
bool vec_fwd(int64_t, int64_t, const scalar_t*, const scalar_t*, const scalar_t*, const acc_t*, const acc_t*,
             const math::Bounds<acc_t>&, scalar_t*, scalar_t*, acc_t*) {
  return false;
}
template <typename scalar_t, typename acc_t>
bool vec_bwd(int64_t, int64_t, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*,
             const acc_t*, const math::Bounds<acc_t>&, scalar_t*, scalar_t*) {
  return false;
}

#ifdef FASTSAC_VEC_SG
bool vec_fwd(int64_t N, int64_t A, const float* m, const float* s, const float* n, const float* sc, const float* bi,
             const math::Bounds<float>& b, float* act, float* lp, float* part) {
  // log|scale| summed over j in order, as squashed_gaussian_row_fwd sums it; subtracted once per row.
  float log_abs_scale = 0.0f;
  if (sc != nullptr) {
    for (int64_t j = 0; j < A; ++j) log_abs_scale += math::log_(math::abs_(sc[j]));
  }
  forward_blocks(N, part, [&](int64_t r0, int64_t r1) {
    return vec_sg::fwd_block(m, s, n, sc, bi, log_abs_scale, b, r0, r1, A, act, lp);
  });
  return true;
}

bool vec_bwd(int64_t N, int64_t A, const float* ga, const float* glp, const float* m, const float* s, const float* n,
             const float* sc, const math::Bounds<float>& b, float* dm, float* ds) {
  backward_blocks(N, [&](int64_t r0, int64_t r1) { vec_sg::bwd_block(ga, glp, m, s, n, sc, b, r0, r1, A, dm, ds); });
  return true;
}
#endif

// The vectorized float32 categorical (vec_cat.h), the same way: false (scalar rows) for every other storage type,
// and for float32 too without FASTSAC_VEC_CAT.
template <typename scalar_t, typename acc_t>
bool vec_cat_fwd(int64_t, int64_t, const scalar_t*, scalar_t*, scalar_t*, scalar_t*, acc_t*) {
  return false;
}
template <typename scalar_t>
bool vec_cat_bwd(int64_t, int64_t, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*) {
  return false;
}

// One sample's projection and one row of the categorical TD loss: the vectorized float32 functions (vec_cat.h)
// where the build has them, else the scalar ones of sac_math.h (float64 math, and float32 without FASTSAC_VEC_CAT).
template <typename scalar_t, typename acc_t>
acc_t td_row_loss(const scalar_t* z, const acc_t* m, int64_t K) {
  return math::categorical_td_row_loss<scalar_t, acc_t>(z, m, K);
}
template <typename scalar_t, typename acc_t>
void td_row_bwd(acc_t g, const scalar_t* z, const acc_t* m, int64_t K, scalar_t* d) {
  math::categorical_td_row_bwd<scalar_t, acc_t>(g, z, m, K, d);
}
template <typename acc_t>
void td_project(const acc_t* p, const math::TdShift<acc_t>& s, acc_t* m) {
  math::td_project_row<acc_t>(p, s, m);
}
#ifdef FASTSAC_VEC_CAT
template <>
void td_project<float>(const float* p, const math::TdShift<float>& s, float* m) {
  vec_cat::td_project_row(p, s.reward, s.gnd, s.ent, s.v_min, s.v_max, s.dz, s.K, m);
}
template <>
float td_row_loss<float, float>(const float* z, const float* m, int64_t K) { return vec_cat::td_row_loss(z, m, K); }
template <>
void td_row_bwd<float, float>(float g, const float* z, const float* m, int64_t K, float* d) {
  vec_cat::td_row_bwd(g, z, m, K, d);
}
#endif

#ifdef FASTSAC_VEC_CAT
bool vec_cat_fwd(int64_t N, int64_t A, const float* z, float* p, float* lp, float* h, float* part) {
  forward_blocks(N, part, [&](int64_t r0, int64_t r1) { return vec_cat::fwd_block(z, A, r0, r1, p, lp, h); });
  return true;
}

bool vec_cat_bwd(int64_t N, int64_t A, const float* gp, const float* glp, const float* gh, const float* z,
                 float* d) {
  backward_blocks(N, [&](int64_t r0, int64_t r1) { vec_cat::bwd_block(gp, glp, gh, z, A, r0, r1, d); });
  return true;
}
#endif

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
    if (!vec_fwd(N, A, m, s, n, sc, bi, b, act, lp, part)) {
      forward_blocks(N, part, [&](int64_t r0, int64_t r1) {
        acc_t block_sum = acc_t(0);
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t o = r * A;
          const acc_t row_lp =
              math::squashed_gaussian_row_fwd<scalar_t, acc_t>(m + o, s + o, n + o, sc, bi, b, A, act + o);
          lp[r] = static_cast<scalar_t>(row_lp);
          block_sum += row_lp;
        }
        return block_sum;
      });
    }
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
    if (!vec_bwd(N, A, ga, glp, m, s, n, sc, b, dm, ds)) {
      backward_blocks(N, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t o = r * A;
          math::squashed_gaussian_row_bwd<scalar_t, acc_t>(ga + o, static_cast<acc_t>(glp[r]), m + o, s + o,
                                                           n + o, sc, b, A, dm + o, ds + o);
        }
      });
    }
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
    if (!vec_cat_fwd(N, A, z, p, lp, h, part)) {
      forward_blocks(N, part, [&](int64_t r0, int64_t r1) {
        acc_t block_sum = acc_t(0);
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t o = r * A;
          const acc_t row_h = math::categorical_row_fwd<scalar_t, acc_t>(z + o, A, p + o, lp + o);
          h[r] = static_cast<scalar_t>(row_h);
          block_sum += row_h;
        }
        return block_sum;
      });
    }
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
    if (!vec_cat_bwd(N, A, gp, glp, gh, z, d)) {
      backward_blocks(N, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t o = r * A;
          math::categorical_row_bwd<scalar_t, acc_t>(gp + o, glp + o, static_cast<acc_t>(gh[r]), z + o, A,
                                                     d + o);
        }
      });
    }
  });
  return d_logits;
}


// The categorical TD loss, parallel over blocks of samples: each sample's projection m is formed once (the scatter
// form of sac_math.h) straight into the output m, then each member's row loss reads it. kTdSamplesPerBlock: a
// sample is C rows of K atoms (2 x 101 in FlashSAC), far more work than a policy row, so blocks are smaller than
// kRowsPerBlock: B = 512 still makes 8 work items for the thread pool.
constexpr int64_t kTdSamplesPerBlock = 64;

std::tuple<Tensor, Tensor> categorical_td_fwd_cpu(const Tensor& logits, const Tensor& target_probs,
                                                  const Tensor& reward, const Tensor& not_done,
                                                  const Tensor& entropy_term, TdArgs args) {
  const int64_t C = logits.size(0), B = logits.size(1), K = logits.size(2);
  Tensor loss = at::empty({C, B}, logits.options());
  Tensor m = at::empty({B, K}, target_probs.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_td_fwd_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* z = logits.data_ptr<scalar_t>();
    const acc_t* p = target_probs.data_ptr<acc_t>();
    const acc_t* r = reward.data_ptr<acc_t>();
    const acc_t* nd = not_done.data_ptr<acc_t>();
    const acc_t* ent = entropy_term.data_ptr<acc_t>();
    acc_t* mo = m.data_ptr<acc_t>();
    scalar_t* out = loss.data_ptr<scalar_t>();
    const acc_t gamma = static_cast<acc_t>(args.gamma), v_min = static_cast<acc_t>(args.v_min);
    const acc_t v_max = static_cast<acc_t>(args.v_max);
    const acc_t dz = static_cast<acc_t>((args.v_max - args.v_min) / static_cast<double>(K - 1));
    at::parallel_for(0, (B + kTdSamplesPerBlock - 1) / kTdSamplesPerBlock, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0 * kTdSamplesPerBlock; b < std::min(B, b1 * kTdSamplesPerBlock); ++b) {
        const math::TdShift<acc_t> shift{r[b], nd[b] * gamma, ent[b], v_min, v_max, dz, K};
        td_project<acc_t>(p + b * K, shift, mo + b * K);
        for (int64_t c = 0; c < C; ++c) {
          const int64_t row = c * B + b;
          out[row] = static_cast<scalar_t>(td_row_loss<scalar_t, acc_t>(z + row * K, mo + b * K, K));
        }
      }
    });
  });
  return {loss, m};
}

Tensor categorical_td_bwd_cpu(const Tensor& grad_loss, const Tensor& logits, const Tensor& m) {
  const int64_t C = logits.size(0), B = logits.size(1), K = logits.size(2);
  Tensor d_logits = at::empty_like(logits);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_td_bwd_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* g = grad_loss.data_ptr<scalar_t>();
    const scalar_t* z = logits.data_ptr<scalar_t>();
    const acc_t* mi = m.data_ptr<acc_t>();
    scalar_t* d = d_logits.data_ptr<scalar_t>();
    backward_blocks(C * B, [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        td_row_bwd<scalar_t, acc_t>(static_cast<acc_t>(g[row]), z + row * K, mi + (row % B) * K, K, d + row * K);
      }
    });
  });
  return d_logits;
}

}  // namespace fastsac
