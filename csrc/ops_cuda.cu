// CUDA kernels of the fused SAC primitives. The math is sac_math.h (shared with the CPU path); this file
// only maps rows onto threads and reduces.
//
// Layout: a group of G lanes (G = the power of two >= A, at most 32) handles one row; lane l takes elements
// l, l + G, ... so a warp reads 32 consecutive elements (coalesced) and a row reduction is log2(G) shuffles.
// Blocks of 256 threads walk the rows grid-stride. Math in float32 (float64 for float64 inputs), no fast-math:
// the contract wants fp32 relative error well under 1e-5 against a float64 reference.
// No vectorised (16-byte) loads: a row of A = 6 or 17 elements is not 16-byte aligned, and the group loads
// above are already coalesced; revisit with bench/ numbers from an H100 if the ops turn out load-bound.
//
// want_sum: every block writes the sum of its rows' values (fixed order: lanes, then warps in order) to a
// partials buffer, and a one-block kernel sums the partials in a fixed order. No atomics, so the total is the
// same bit for bit from run to run on a given GPU model.
//
// Everything is launched on the current stream (c10::cuda::getCurrentCUDAStream, which at::cuda:: aliases)
// with no host synchronisation, so the ops can be captured in a CUDA graph. The includes avoid
// ATen/cuda/CUDAContext.h (it pulls cuBLAS/cuSPARSE headers), so the file also compiles against the headers
// of a CPU-only torch wheel (tests/csrc/test_nvcc_compile.py).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "ops.h"
#include "sac_math.h"

namespace fastsac {
namespace {

constexpr int kThreads = 256;  // threads per block
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlocksPerSm = 2048 / kThreads;  // resident-thread limit of an SM on sm_80 / sm_90

// ---- reductions ------------------------------------------------------------------------------------------------
// All lanes of the warp must call these (full mask): the row loops below keep the trip count uniform per block.
template <int G, typename T>
__device__ __forceinline__ T group_sum(T v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off, G);
  return v;
}

template <int G, typename T>
__device__ __forceinline__ T group_max(T v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v = math::max_(v, __shfl_xor_sync(0xffffffffu, v, off, G));
  return v;
}

// Sum over the block in a fixed order; the result is valid in thread 0. Every thread of the block must call it.
template <typename T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ __align__(8) unsigned char raw[kWarps * sizeof(T)];
  T* warp_sums = reinterpret_cast<T*>(raw);
  v = group_sum<32>(v);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  T total = T(0);
  if (threadIdx.x == 0) {
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  }
  return total;
}

template <typename acc_t>
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(const acc_t* __restrict__ partials, int64_t n,
                                                                acc_t* __restrict__ out) {
  acc_t v = acc_t(0);
  for (int64_t i = threadIdx.x; i < n; i += kThreads) v += partials[i];
  const acc_t total = block_sum(v);
  if (threadIdx.x == 0) *out = total;
}

// Rows of this block's tiles: tile t covers rows [base, base + kThreads / G) with base = (blockIdx.x + t *
// gridDim.x) * kThreads / G; thread (row_in_tile, lane) = (threadIdx.x / G, threadIdx.x % G).
#define FASTSAC_ROW_LOOP(G, N)                                                                   \
  constexpr int kRowsPerTile = kThreads / (G);                                                   \
  const int lane = threadIdx.x % (G);                                                            \
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * kRowsPerTile; base < (N);               \
       base += static_cast<int64_t>(gridDim.x) * kRowsPerTile)

// ---- squashed Gaussian -----------------------------------------------------------------------------------------
template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) squashed_gaussian_fwd_kernel(
    const scalar_t* __restrict__ mean, const scalar_t* __restrict__ log_std, const scalar_t* __restrict__ noise,
    const acc_t* __restrict__ scale, const acc_t* __restrict__ bias, math::Bounds<acc_t> bounds,
    scalar_t* __restrict__ action, scalar_t* __restrict__ log_prob, acc_t* __restrict__ partials, int64_t N,
    int64_t A) {
  acc_t block_acc = acc_t(0);
  FASTSAC_ROW_LOOP(G, N) {
    const int64_t row = base + threadIdx.x / G;
    const bool valid = row < N;
    acc_t lp = acc_t(0), log_abs_scale = acc_t(0);
    if (valid) {
      const int64_t o = row * A;
      for (int64_t j = lane; j < A; j += G) {
        const math::SquashedGaussianElem<acc_t> e = math::squashed_gaussian_elem_fwd<acc_t>(
            static_cast<acc_t>(mean[o + j]), static_cast<acc_t>(log_std[o + j]), static_cast<acc_t>(noise[o + j]),
            scale, bias, j, bounds);
        action[o + j] = static_cast<scalar_t>(e.action);
        lp += e.lp_term;
        log_abs_scale += e.log_abs_scale;
      }
    }
    lp = group_sum<G>(lp);
    log_abs_scale = group_sum<G>(log_abs_scale);
    if (valid && lane == 0) {
      const acc_t v = lp - log_abs_scale;
      log_prob[row] = static_cast<scalar_t>(v);
      block_acc += v;
    }
  }
  if (partials != nullptr) {
    const acc_t total = block_sum(block_acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
  }
}

template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) squashed_gaussian_bwd_kernel(
    const scalar_t* __restrict__ grad_action, const scalar_t* __restrict__ grad_log_prob,
    const scalar_t* __restrict__ mean, const scalar_t* __restrict__ log_std, const scalar_t* __restrict__ noise,
    const acc_t* __restrict__ scale, math::Bounds<acc_t> bounds, scalar_t* __restrict__ d_mean,
    scalar_t* __restrict__ d_log_std, int64_t N, int64_t A) {
  FASTSAC_ROW_LOOP(G, N) {
    const int64_t row = base + threadIdx.x / G;
    if (row >= N) continue;  // no shuffles in this kernel: divergence is harmless
    const int64_t o = row * A;
    const acc_t g_lp = static_cast<acc_t>(grad_log_prob[row]);
    for (int64_t j = lane; j < A; j += G) {
      const math::SquashedGaussianGrad<acc_t> g = math::squashed_gaussian_elem_bwd<acc_t>(
          static_cast<acc_t>(grad_action[o + j]), g_lp, static_cast<acc_t>(mean[o + j]),
          static_cast<acc_t>(log_std[o + j]), static_cast<acc_t>(noise[o + j]), scale, j, bounds);
      d_mean[o + j] = static_cast<scalar_t>(g.d_mean);
      d_log_std[o + j] = static_cast<scalar_t>(g.d_log_std);
    }
  }
}

// ---- categorical -----------------------------------------------------------------------------------------------
// Row max and log-sum-exp shift (log sum_j exp(z_j - max)), shared by the forward and backward kernels.
template <typename scalar_t, typename acc_t, int G>
__device__ __forceinline__ void categorical_group_lse(const scalar_t* __restrict__ z, bool valid, int lane,
                                                      int64_t A, acc_t& mx, acc_t& lse_shift) {
  mx = math::neg_inf<acc_t>();
  if (valid) {
    for (int64_t j = lane; j < A; j += G) mx = math::max_(mx, static_cast<acc_t>(z[j]));
  }
  mx = group_max<G>(mx);
  acc_t s = acc_t(0);
  if (valid) {
    for (int64_t j = lane; j < A; j += G) s += math::categorical_exp_shifted(static_cast<acc_t>(z[j]), mx);
  }
  lse_shift = math::log_(group_sum<G>(s));
}

template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) categorical_fwd_kernel(const scalar_t* __restrict__ logits,
                                                                   scalar_t* __restrict__ probs,
                                                                   scalar_t* __restrict__ log_probs,
                                                                   scalar_t* __restrict__ entropy,
                                                                   acc_t* __restrict__ partials, int64_t N,
                                                                   int64_t A) {
  acc_t block_acc = acc_t(0);
  FASTSAC_ROW_LOOP(G, N) {
    const int64_t row = base + threadIdx.x / G;
    const bool valid = row < N;
    const int64_t o = valid ? row * A : 0;
    acc_t mx, lse_shift;
    categorical_group_lse<scalar_t, acc_t, G>(logits + o, valid, lane, A, mx, lse_shift);
    acc_t plogp = acc_t(0);
    if (valid) {
      for (int64_t j = lane; j < A; j += G) {
        const math::CategoricalElem<acc_t> c =
            math::categorical_elem(static_cast<acc_t>(logits[o + j]), mx, lse_shift);
        probs[o + j] = static_cast<scalar_t>(c.p);
        log_probs[o + j] = static_cast<scalar_t>(c.log_p);
        plogp += c.p_log_p;
      }
    }
    plogp = group_sum<G>(plogp);
    if (valid && lane == 0) {
      const acc_t h = -plogp;
      entropy[row] = static_cast<scalar_t>(h);
      block_acc += h;
    }
  }
  if (partials != nullptr) {
    const acc_t total = block_sum(block_acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
  }
}

template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) categorical_bwd_kernel(const scalar_t* __restrict__ grad_probs,
                                                                   const scalar_t* __restrict__ grad_log_probs,
                                                                   const scalar_t* __restrict__ grad_entropy,
                                                                   const scalar_t* __restrict__ logits,
                                                                   scalar_t* __restrict__ d_logits, int64_t N,
                                                                   int64_t A) {
  FASTSAC_ROW_LOOP(G, N) {
    const int64_t row = base + threadIdx.x / G;
    const bool valid = row < N;
    const int64_t o = valid ? row * A : 0;
    acc_t mx, lse_shift;
    categorical_group_lse<scalar_t, acc_t, G>(logits + o, valid, lane, A, mx, lse_shift);
    acc_t plogp = acc_t(0), sum_g_lp = acc_t(0), sum_g_p_p = acc_t(0);
    if (valid) {
      for (int64_t j = lane; j < A; j += G) {
        const math::CategoricalElem<acc_t> c =
            math::categorical_elem(static_cast<acc_t>(logits[o + j]), mx, lse_shift);
        plogp += c.p_log_p;
        sum_g_lp += static_cast<acc_t>(grad_log_probs[o + j]);
        sum_g_p_p += static_cast<acc_t>(grad_probs[o + j]) * c.p;
      }
    }
    plogp = group_sum<G>(plogp);
    sum_g_lp = group_sum<G>(sum_g_lp);
    sum_g_p_p = group_sum<G>(sum_g_p_p);
    if (valid) {
      const acc_t h = -plogp;
      const acc_t g_h = static_cast<acc_t>(grad_entropy[row]);
      for (int64_t j = lane; j < A; j += G) {
        const math::CategoricalElem<acc_t> c =
            math::categorical_elem(static_cast<acc_t>(logits[o + j]), mx, lse_shift);
        d_logits[o + j] = static_cast<scalar_t>(
            math::categorical_elem_bwd(c, static_cast<acc_t>(grad_probs[o + j]),
                                       static_cast<acc_t>(grad_log_probs[o + j]), g_h, h, sum_g_lp, sum_g_p_p));
      }
    }
  }
}

// ---- categorical TD loss ---------------------------------------------------------------------------------------
// Forward: a group of G lanes per sample. Lane l forms m_j for its atoms j = l, l + G, ... in the gather form of
// sac_math.h (td_project_atom: O(K) per atom, the same terms in the same order as the CPU's scatter, no atomics, so
// the projection is deterministic), writes them to m, then for each member reduces the row's log-sum-exp and its
// share of -sum_j m_j log p_j (re-reading its own m_j: written by this thread, so visible to it).
// K = 101 (FlashSAC): ~4 atoms per lane, ~400 cheap (clip, divide, floor) evaluations a lane, per sample.
template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) categorical_td_fwd_kernel(
    const scalar_t* __restrict__ logits, const acc_t* __restrict__ target_probs, const acc_t* __restrict__ reward,
    const acc_t* __restrict__ not_done, const acc_t* __restrict__ entropy_term, acc_t gamma, acc_t v_min,
    acc_t v_max, acc_t dz, scalar_t* __restrict__ loss, acc_t* __restrict__ m, int64_t C, int64_t B, int64_t K) {
  FASTSAC_ROW_LOOP(G, B) {
    const int64_t b = base + threadIdx.x / G;
    const bool valid = b < B;
    if (valid) {
      const math::TdShift<acc_t> shift{reward[b], not_done[b] * gamma, entropy_term[b], v_min, v_max, dz, K};
#pragma unroll 1  // unrolled, ptxas spilled 4-8 bytes at G = 2 (tests/csrc/test_nvcc_compile.py); no gain from it
      for (int64_t j = lane; j < K; j += G) m[b * K + j] = math::td_project_atom<acc_t>(target_probs + b * K, shift, j);
    }
    for (int64_t c = 0; c < C; ++c) {  // uniform trip count: every lane reaches the shuffles
      const int64_t row = c * B + b;
      const int64_t o = valid ? row * K : 0;
      acc_t mx, lse_shift;
      categorical_group_lse<scalar_t, acc_t, G>(logits + o, valid, lane, K, mx, lse_shift);
      acc_t part = acc_t(0);
      if (valid) {
        for (int64_t j = lane; j < K; j += G) {
          part -= m[b * K + j] * ((static_cast<acc_t>(logits[o + j]) - mx) - lse_shift);
        }
      }
      part = group_sum<G>(part);
      if (valid && lane == 0) loss[row] = static_cast<scalar_t>(part);
    }
  }
}

// Backward: a group of G lanes per member row: d_j = g (softmax_j sum(m) - m_j).
template <typename scalar_t, typename acc_t, int G>
__global__ void __launch_bounds__(kThreads) categorical_td_bwd_kernel(const scalar_t* __restrict__ grad_loss,
                                                                      const scalar_t* __restrict__ logits,
                                                                      const acc_t* __restrict__ m,
                                                                      scalar_t* __restrict__ d_logits, int64_t N,
                                                                      int64_t B, int64_t K) {
  FASTSAC_ROW_LOOP(G, N) {
    const int64_t row = base + threadIdx.x / G;
    const bool valid = row < N;
    const int64_t o = valid ? row * K : 0, mo = valid ? (row % B) * K : 0;
    acc_t mx, lse_shift;
    categorical_group_lse<scalar_t, acc_t, G>(logits + o, valid, lane, K, mx, lse_shift);
    acc_t mass = acc_t(0);
    if (valid) {
      for (int64_t j = lane; j < K; j += G) mass += m[mo + j];
    }
    mass = group_sum<G>(mass);
    if (valid) {
      const acc_t g = static_cast<acc_t>(grad_loss[row]);
      for (int64_t j = lane; j < K; j += G) {
        const acc_t p = math::exp_((static_cast<acc_t>(logits[o + j]) - mx) - lse_shift);
        d_logits[o + j] = static_cast<scalar_t>(g * (p * mass - m[mo + j]));
      }
    }
  }
}

#undef FASTSAC_ROW_LOOP

// ---- launch helpers --------------------------------------------------------------------------------------------
int sm_count(c10::DeviceIndex device) {
  static std::atomic<int> cache[64];  // zero-initialised; a benign race writes the same value
  const bool cached = device >= 0 && device < 64;
  if (cached) {
    const int v = cache[device].load(std::memory_order_relaxed);
    if (v > 0) return v;
  }
  int v = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
  if (cached) cache[device].store(v, std::memory_order_relaxed);
  return v;
}

int group_size(int64_t A) {
  int g = 1;
  while (g < A && g < 32) g <<= 1;
  return g;
}

unsigned grid_size(int64_t N, int G, c10::DeviceIndex device) {
  const int64_t rows_per_block = kThreads / G;
  const int64_t needed = (N + rows_per_block - 1) / rows_per_block;
  const int64_t cap = static_cast<int64_t>(sm_count(device)) * kMaxBlocksPerSm;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(needed, cap)));
}

// Calls f(std::integral_constant<int, G>{}) for the runtime group size G in {1, 2, 4, 8, 16, 32}.
template <typename F>
void with_group_size(int G, F&& f) {
  switch (G) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    default: f(std::integral_constant<int, 32>{}); break;
  }
}

at::ScalarType compute_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

template <typename T>
const T* opt_ptr(const OptTensor& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<T>() : nullptr;
}

template <typename T>
math::Bounds<T> to_bounds(const BoundsArg& b) {
  return math::Bounds<T>{b.on, static_cast<T>(b.lo), static_cast<T>(b.half_range)};
}

// Reduces `partials` (one value per block) into a new 0-dim tensor on the current stream.
template <typename acc_t>
Tensor launch_sum_partials(const Tensor& partials, cudaStream_t stream) {
  Tensor out = at::empty({}, partials.options());
  sum_partials_kernel<acc_t><<<1, kThreads, 0, stream>>>(partials.data_ptr<acc_t>(), partials.numel(),
                                                          out.data_ptr<acc_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd_cuda(const Tensor& mean, const Tensor& log_std,
                                                                 const Tensor& noise, const OptTensor& scale,
                                                                 const OptTensor& bias, BoundsArg bounds,
                                                                 bool want_sum) {
  const c10::cuda::CUDAGuard guard(mean.device());
  const int64_t N = mean.size(0), A = mean.size(1);
  const auto acc_opts = mean.options().dtype(compute_type(mean.scalar_type()));
  Tensor action = at::empty_like(mean);
  Tensor log_prob = at::empty({N}, mean.options());
  if (N == 0) return {action, log_prob, want_sum ? OptTensor(at::zeros({}, acc_opts)) : OptTensor()};
  const int G = group_size(A);
  const unsigned grid = grid_size(N, G, mean.get_device());
  Tensor partials;
  if (want_sum) partials = at::empty({static_cast<int64_t>(grid)}, acc_opts);
  OptTensor lp_sum;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mean.scalar_type(), "fastsac_squashed_gaussian_fwd_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_size(G, [&](auto g) {
      squashed_gaussian_fwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          mean.data_ptr<scalar_t>(), log_std.data_ptr<scalar_t>(), noise.data_ptr<scalar_t>(), opt_ptr<acc_t>(scale),
          opt_ptr<acc_t>(bias), to_bounds<acc_t>(bounds), action.data_ptr<scalar_t>(), log_prob.data_ptr<scalar_t>(),
          want_sum ? partials.data_ptr<acc_t>() : nullptr, N, A);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    if (want_sum) lp_sum = launch_sum_partials<acc_t>(partials, stream);
  });
  return {action, log_prob, lp_sum};
}

std::tuple<Tensor, Tensor> squashed_gaussian_bwd_cuda(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                      const Tensor& mean, const Tensor& log_std,
                                                      const Tensor& noise, const OptTensor& scale,
                                                      BoundsArg bounds) {
  const c10::cuda::CUDAGuard guard(mean.device());
  const int64_t N = mean.size(0), A = mean.size(1);
  Tensor d_mean = at::empty_like(mean);
  Tensor d_log_std = at::empty_like(mean);
  if (N == 0) return {d_mean, d_log_std};
  const int G = group_size(A);
  const unsigned grid = grid_size(N, G, mean.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mean.scalar_type(), "fastsac_squashed_gaussian_bwd_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_size(G, [&](auto g) {
      squashed_gaussian_bwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          grad_action.data_ptr<scalar_t>(), grad_log_prob.data_ptr<scalar_t>(), mean.data_ptr<scalar_t>(),
          log_std.data_ptr<scalar_t>(), noise.data_ptr<scalar_t>(), opt_ptr<acc_t>(scale), to_bounds<acc_t>(bounds),
          d_mean.data_ptr<scalar_t>(), d_log_std.data_ptr<scalar_t>(), N, A);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {d_mean, d_log_std};
}

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd_cuda(const Tensor& logits, bool want_sum) {
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t N = logits.size(0), A = logits.size(1);
  const auto acc_opts = logits.options().dtype(compute_type(logits.scalar_type()));
  Tensor probs = at::empty_like(logits);
  Tensor log_probs = at::empty_like(logits);
  Tensor entropy = at::empty({N}, logits.options());
  if (N == 0) return {probs, log_probs, entropy, want_sum ? OptTensor(at::zeros({}, acc_opts)) : OptTensor()};
  const int G = group_size(A);
  const unsigned grid = grid_size(N, G, logits.get_device());
  Tensor partials;
  if (want_sum) partials = at::empty({static_cast<int64_t>(grid)}, acc_opts);
  OptTensor entropy_sum;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_fwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_size(G, [&](auto g) {
      categorical_fwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          logits.data_ptr<scalar_t>(), probs.data_ptr<scalar_t>(), log_probs.data_ptr<scalar_t>(),
          entropy.data_ptr<scalar_t>(), want_sum ? partials.data_ptr<acc_t>() : nullptr, N, A);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    if (want_sum) entropy_sum = launch_sum_partials<acc_t>(partials, stream);
  });
  return {probs, log_probs, entropy, entropy_sum};
}

Tensor categorical_bwd_cuda(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                            const Tensor& logits) {
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t N = logits.size(0), A = logits.size(1);
  Tensor d_logits = at::empty_like(logits);
  if (N == 0) return d_logits;
  const int G = group_size(A);
  const unsigned grid = grid_size(N, G, logits.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_bwd_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_size(G, [&](auto g) {
      categorical_bwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          grad_probs.data_ptr<scalar_t>(), grad_log_probs.data_ptr<scalar_t>(), grad_entropy.data_ptr<scalar_t>(),
          logits.data_ptr<scalar_t>(), d_logits.data_ptr<scalar_t>(), N, A);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return d_logits;
}

std::tuple<Tensor, Tensor> categorical_td_fwd_cuda(const Tensor& logits, const Tensor& target_probs,
                                                   const Tensor& reward, const Tensor& not_done,
                                                   const Tensor& entropy_term, TdArgs args) {
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t C = logits.size(0), B = logits.size(1), K = logits.size(2);
  Tensor loss = at::empty({C, B}, logits.options());
  Tensor m = at::empty({B, K}, target_probs.options());
  if (B == 0) return {loss, m};
  const int G = group_size(K);
  const unsigned grid = grid_size(B, G, logits.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_td_fwd_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t dz = static_cast<acc_t>((args.v_max - args.v_min) / static_cast<double>(K - 1));
    with_group_size(G, [&](auto g) {
      categorical_td_fwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          logits.data_ptr<scalar_t>(), target_probs.data_ptr<acc_t>(), reward.data_ptr<acc_t>(),
          not_done.data_ptr<acc_t>(), entropy_term.data_ptr<acc_t>(), static_cast<acc_t>(args.gamma),
          static_cast<acc_t>(args.v_min), static_cast<acc_t>(args.v_max), dz, loss.data_ptr<scalar_t>(),
          m.data_ptr<acc_t>(), C, B, K);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {loss, m};
}

Tensor categorical_td_bwd_cuda(const Tensor& grad_loss, const Tensor& logits, const Tensor& m) {
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t C = logits.size(0), B = logits.size(1), K = logits.size(2);
  Tensor d_logits = at::empty_like(logits);
  const int64_t N = C * B;
  if (N == 0) return d_logits;
  const int G = group_size(K);
  const unsigned grid = grid_size(N, G, logits.get_device());
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "fastsac_categorical_td_bwd_cuda",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    with_group_size(G, [&](auto g) {
      categorical_td_bwd_kernel<scalar_t, acc_t, decltype(g)::value><<<grid, kThreads, 0, stream>>>(
          grad_loss.data_ptr<scalar_t>(), logits.data_ptr<scalar_t>(), m.data_ptr<acc_t>(),
          d_logits.data_ptr<scalar_t>(), N, B, K);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return d_logits;
}

}  // namespace fastsac
