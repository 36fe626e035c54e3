// The one home of the fused SAC math: per-element and per-row forward/backward of the tanh-squashed Gaussian,
// of the categorical (softmax) policy head and of the categorical (C51) TD loss of distributional critics.
//
// Both the CPU implementation (ops_cpu.cpp) and the CUDA kernels (ops_cuda.cu) call these functions, so the
// CPU tests in CI exercise the same C++ the GPU runs. The formulas follow fastsac/ops/reference.py (the
// contract) term by term, in the same order, so that float64 results agree to rounding:
//
//   e = exp(-2|u|),  tanh(u) = sign(u) (1 - e) / (1 + e),  1 - tanh(u)^2 = 4 e / (1 + e)^2,
//   log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(e))      exact and finite for any finite u (|u| of 20 or 50).
//
// Templated on the compute type T (float or double); the storage type (float, double, c10::Half,
// c10::BFloat16, or anything with conversions to and from T) only appears in the row helpers. This header
// depends on nothing but the C math library, so nvcc can compile it without the torch headers.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FASTSAC_HD __host__ __device__ __forceinline__
#else
#define FASTSAC_HD inline
#endif

namespace fastsac {
namespace math {

// ---- typed wrappers: the float overloads call the single-precision functions on host and device ----------
FASTSAC_HD float exp_(float x) { return expf(x); }
FASTSAC_HD double exp_(double x) { return exp(x); }
FASTSAC_HD float log_(float x) { return logf(x); }
FASTSAC_HD double log_(double x) { return log(x); }
FASTSAC_HD float log1p_(float x) { return log1pf(x); }
FASTSAC_HD double log1p_(double x) { return log1p(x); }
FASTSAC_HD float floor_(float x) { return floorf(x); }
FASTSAC_HD double floor_(double x) { return floor(x); }
FASTSAC_HD float abs_(float x) { return fabsf(x); }
FASTSAC_HD double abs_(double x) { return fabs(x); }
FASTSAC_HD float copysign_(float x, float s) { return copysignf(x, s); }
FASTSAC_HD double copysign_(double x, double s) { return copysign(x, s); }
// max that ignores nothing special: NaN propagates through the exp/sum that follows it.
template <typename T>
FASTSAC_HD T max_(T a, T b) { return a > b ? a : b; }

template <typename T>
FASTSAC_HD T log_2() { return T(0.693147180559945309417232121458176568); }
template <typename T>
FASTSAC_HD T log_sqrt_2pi() { return T(0.918938533204672741780329736405617640); }  // 0.5 * log(2 pi)
template <typename T>
FASTSAC_HD T neg_inf() { return -T(INFINITY); }

// ---- tanh parts ----------------------------------------------------------------------------------------
template <typename T>
struct TanhParts {
  T a;                 // tanh(u)
  T one_minus_a2;      // 1 - tanh(u)^2, relative accuracy kept when tanh saturates
  T log_one_minus_a2;  // log(1 - tanh(u)^2)
};

template <typename T>
FASTSAC_HD TanhParts<T> tanh_parts(T u) {
  const T abs_u = abs_(u);
  const T e = exp_(T(-2) * abs_u);
  const T one_plus_e = T(1) + e;
  TanhParts<T> r;
  r.a = copysign_((T(1) - e) / one_plus_e, u);
  r.one_minus_a2 = T(4) * e / (one_plus_e * one_plus_e);
  r.log_one_minus_a2 = T(2) * (log_2<T>() - abs_u - log1p_(e));
  return r;
}

// ---- log-std bounds: log_std = lo + half_range * (tanh(raw) + 1), half_range = 0.5 * (hi - lo) --------------
template <typename T>
struct Bounds {
  bool on;
  T lo;
  T half_range;
};

template <typename T>
struct BoundedLogStd {
  T s;             // the log standard deviation used by the Gaussian
  T one_minus_t2;  // 1 - tanh(raw)^2; d s / d raw = half_range * one_minus_t2 (unused when the bounds are off)
};

template <typename T>
FASTSAC_HD BoundedLogStd<T> bounded_log_std(T raw, const Bounds<T>& b) {
  BoundedLogStd<T> r;
  if (b.on) {
    const TanhParts<T> t = tanh_parts(raw);
    r.s = b.lo + b.half_range * (t.a + T(1));
    r.one_minus_t2 = t.one_minus_a2;
  } else {
    r.s = raw;
    r.one_minus_t2 = T(1);
  }
  return r;
}

// ---- tanh-squashed Gaussian: one element ---------------------------------------------------------------------
template <typename T>
struct SquashedGaussianElem {
  T action;         // tanh(u) * scale + bias
  T lp_term;        // -0.5 n^2 - s - log(sqrt(2 pi)) - log(1 - tanh(u)^2), summed over the row
  T log_abs_scale;  // log|scale| (0 without scale), summed over the row and subtracted once, as the reference
};

// m, s_in, n: mean, log_std argument (raw when bounds are on), noise. scale/bias: nullptr when absent.
template <typename T>
FASTSAC_HD SquashedGaussianElem<T> squashed_gaussian_elem_fwd(T m, T s_in, T n, const T* scale, const T* bias,
                                                              int64_t j, const Bounds<T>& b) {
  const T s = bounded_log_std(s_in, b).s;
  const T u = m + exp_(s) * n;
  const TanhParts<T> t = tanh_parts(u);
  SquashedGaussianElem<T> r;
  r.lp_term = T(-0.5) * (n * n) - s - log_sqrt_2pi<T>() - t.log_one_minus_a2;
  r.action = t.a;
  r.log_abs_scale = T(0);
  if (scale != nullptr) {
    const T sc = scale[j];
    r.action = r.action * sc;
    r.log_abs_scale = log_(abs_(sc));
  }
  if (bias != nullptr) r.action = r.action + bias[j];
  return r;
}

template <typename T>
struct SquashedGaussianGrad {
  T d_mean;
  T d_log_std;  // with respect to the log_std argument as given (raw when the bounds are on)
};

// g_a: incoming gradient of the action element; g_lp: incoming gradient of the row's log-prob.
template <typename T>
FASTSAC_HD SquashedGaussianGrad<T> squashed_gaussian_elem_bwd(T g_a, T g_lp, T m, T s_in, T n, const T* scale,
                                                              int64_t j, const Bounds<T>& b) {
  const BoundedLogStd<T> bl = bounded_log_std(s_in, b);
  const T sigma = exp_(bl.s);
  const T u = m + sigma * n;
  const TanhParts<T> t = tanh_parts(u);
  if (scale != nullptr) g_a = g_a * scale[j];
  const T d_u = g_a * t.one_minus_a2 + g_lp * T(2) * t.a;
  T d_s = d_u * sigma * n - g_lp;
  if (b.on) d_s = d_s * b.half_range * bl.one_minus_t2;  // chain rule through the bounds
  SquashedGaussianGrad<T> r;
  r.d_mean = d_u;
  r.d_log_std = d_s;
  return r;
}

// ---- tanh-squashed Gaussian: one row (serial; the CPU path and any one-thread-per-row kernel) ----------------
// Writes action[0..A) and returns the row's log-prob in the compute type (unrounded, for the want_sum total).
template <typename scalar_t, typename T>
FASTSAC_HD T squashed_gaussian_row_fwd(const scalar_t* mean, const scalar_t* log_std, const scalar_t* noise,
                                       const T* scale, const T* bias, const Bounds<T>& b, int64_t A,
                                       scalar_t* action) {
  T lp = T(0), log_abs_scale = T(0);
  for (int64_t j = 0; j < A; ++j) {
    const SquashedGaussianElem<T> e = squashed_gaussian_elem_fwd<T>(
        static_cast<T>(mean[j]), static_cast<T>(log_std[j]), static_cast<T>(noise[j]), scale, bias, j, b);
    action[j] = static_cast<scalar_t>(e.action);
    lp += e.lp_term;
    log_abs_scale += e.log_abs_scale;
  }
  return lp - log_abs_scale;
}

template <typename scalar_t, typename T>
FASTSAC_HD void squashed_gaussian_row_bwd(const scalar_t* grad_action, T g_lp, const scalar_t* mean,
                                          const scalar_t* log_std, const scalar_t* noise, const T* scale,
                                          const Bounds<T>& b, int64_t A, scalar_t* d_mean, scalar_t* d_log_std) {
  for (int64_t j = 0; j < A; ++j) {
    const SquashedGaussianGrad<T> g = squashed_gaussian_elem_bwd<T>(
        static_cast<T>(grad_action[j]), g_lp, static_cast<T>(mean[j]), static_cast<T>(log_std[j]),
        static_cast<T>(noise[j]), scale, j, b);
    d_mean[j] = static_cast<scalar_t>(g.d_mean);
    d_log_std[j] = static_cast<scalar_t>(g.d_log_std);
  }
}

// ---- categorical (softmax over a row of logits) --------------------------------------------------------------
// log_softmax as torch computes it: mx = max_j z_j, lse_shift = log(sum_j exp(z_j - mx)),
// log p_j = (z_j - mx) - lse_shift, p_j = exp(log p_j). Masked actions (z_j = -inf) give p_j = 0 and add 0 to
// the entropy (0 * log 0 = 0).
template <typename T>
struct CategoricalElem {
  T p;
  T log_p;
  T p_log_p;  // p * log p, 0 where p == 0
};

template <typename T>
FASTSAC_HD T categorical_exp_shifted(T z, T mx) { return exp_(z - mx); }

template <typename T>
FASTSAC_HD CategoricalElem<T> categorical_elem(T z, T mx, T lse_shift) {
  CategoricalElem<T> r;
  r.log_p = (z - mx) - lse_shift;
  r.p = exp_(r.log_p);
  r.p_log_p = r.p > T(0) ? r.p * r.log_p : T(0);
  return r;
}

// d z_j = g_lp_j - p_j sum(g_lp) + p_j (g_p_j - sum(g_p p)) - g_H p_j (log p_j + H)
template <typename T>
FASTSAC_HD T categorical_elem_bwd(const CategoricalElem<T>& c, T g_p, T g_lp, T g_h, T entropy, T sum_g_lp,
                                  T sum_g_p_p) {
  T d = g_lp - c.p * sum_g_lp;
  d = d + c.p * (g_p - sum_g_p_p);
  d = d - g_h * (c.p > T(0) ? c.p * (c.log_p + entropy) : T(0));
  return d;
}

template <typename scalar_t, typename T>
FASTSAC_HD void categorical_row_lse(const scalar_t* logits, int64_t A, T* mx_out, T* lse_shift_out) {
  T mx = neg_inf<T>();
  for (int64_t j = 0; j < A; ++j) mx = max_(mx, static_cast<T>(logits[j]));
  T sum = T(0);
  for (int64_t j = 0; j < A; ++j) sum += categorical_exp_shifted(static_cast<T>(logits[j]), mx);
  *mx_out = mx;
  *lse_shift_out = log_(sum);
}

// Writes probs and log_probs of one row; returns its entropy in the compute type (unrounded).
template <typename scalar_t, typename T>
FASTSAC_HD T categorical_row_fwd(const scalar_t* logits, int64_t A, scalar_t* probs, scalar_t* log_probs) {
  T mx, lse_shift;
  categorical_row_lse<scalar_t, T>(logits, A, &mx, &lse_shift);
  T plogp = T(0);
  for (int64_t j = 0; j < A; ++j) {
    const CategoricalElem<T> c = categorical_elem(static_cast<T>(logits[j]), mx, lse_shift);
    probs[j] = static_cast<scalar_t>(c.p);
    log_probs[j] = static_cast<scalar_t>(c.log_p);
    plogp += c.p_log_p;
  }
  return -plogp;
}

template <typename scalar_t, typename T>
FASTSAC_HD void categorical_row_bwd(const scalar_t* grad_probs, const scalar_t* grad_log_probs, T g_h,
                                    const scalar_t* logits, int64_t A, scalar_t* d_logits) {
  T mx, lse_shift;
  categorical_row_lse<scalar_t, T>(logits, A, &mx, &lse_shift);
  T plogp = T(0), sum_g_lp = T(0), sum_g_p_p = T(0);
  for (int64_t j = 0; j < A; ++j) {
    const CategoricalElem<T> c = categorical_elem(static_cast<T>(logits[j]), mx, lse_shift);
    plogp += c.p_log_p;
    sum_g_lp += static_cast<T>(grad_log_probs[j]);
    sum_g_p_p += static_cast<T>(grad_probs[j]) * c.p;
  }
  const T entropy = -plogp;
  for (int64_t j = 0; j < A; ++j) {
    const CategoricalElem<T> c = categorical_elem(static_cast<T>(logits[j]), mx, lse_shift);
    d_logits[j] = static_cast<scalar_t>(categorical_elem_bwd(c, static_cast<T>(grad_probs[j]),
                                                             static_cast<T>(grad_log_probs[j]), g_h, entropy,
                                                             sum_g_lp, sum_g_p_p));
  }
}

// ---- categorical TD loss (C51 projection, distributional critics) ----------------------------------------------
// Per sample: atom k (z_k = v_min + k dz) moves to t_k = clip(r + gamma * not_done * (z_k - ent), v_min, v_max), at
// the fractional index pos_k = (t_k - v_min) / dz clamped to [0, K - 1]; its mass p_k goes to l = floor(pos_k)
// (share 1 - frac, frac = pos_k - l) and u = min(l + 1, K - 1) (share frac); so on an atom all of it goes to l, and
// the projection m keeps the mass. loss = -sum_j m_j log_softmax(z)_j; d loss / d z_j = softmax_j sum(m) - m_j.
// As fastsac/ops/reference.py's categorical_td_project, operation for operation.
template <typename T>
struct TdShift {
  T reward;
  T gnd;  // gamma * not_done
  T ent;  // alpha * log pi(a'|s')
  T v_min;
  T v_max;
  T dz;
  int64_t K;
};

// Where atom k lands: its lower neighbour *l (in [0, K - 1]) and the share *frac that goes to l + 1 (0 when
// l = K - 1). A NaN input gives l = 0 and frac = NaN, so a NaN reaches m and the loss, and no index goes astray.
template <typename T>
FASTSAC_HD void td_atom_target(const TdShift<T>& s, int64_t k, int64_t* l, T* frac) {
  const T z = s.v_min + static_cast<T>(k) * s.dz;
  T t = s.reward + s.gnd * (z - s.ent);
  t = t < s.v_min ? s.v_min : (t > s.v_max ? s.v_max : t);
  const T top = static_cast<T>(s.K - 1);
  T pos = (t - s.v_min) / s.dz;
  pos = pos < T(0) ? T(0) : (pos > top ? top : pos);
  int64_t low = pos >= T(0) ? static_cast<int64_t>(floor_(pos)) : 0;  // pos >= 0 is false only for NaN
  if (low > s.K - 1) low = s.K - 1;
  *l = low;
  *frac = pos - static_cast<T>(low);
}

// The projection of one sample (scatter form, O(K): the CPU path): writes m[0..K) in the compute type.
template <typename T>
FASTSAC_HD void td_project_row(const T* p, const TdShift<T>& s, T* m) {
  for (int64_t j = 0; j < s.K; ++j) m[j] = T(0);
  for (int64_t k = 0; k < s.K; ++k) {
    int64_t l;
    T frac;
    td_atom_target(s, k, &l, &frac);
    const int64_t u = l + 1 < s.K ? l + 1 : l;
    m[l] += p[k] * (T(1) - frac);
    m[u] += p[k] * frac;
  }
}

// m_j of one sample in gather form (O(K) per atom j: the GPU path, one lane per j, no atomics): the same terms
// added in the same order (k ascending) as td_project_row adds them to m[j].
template <typename T>
FASTSAC_HD T td_project_atom(const T* p, const TdShift<T>& s, int64_t j) {
  T mj = T(0);
  for (int64_t k = 0; k < s.K; ++k) {
    int64_t l;
    T frac;
    td_atom_target(s, k, &l, &frac);
    const int64_t u = l + 1 < s.K ? l + 1 : l;
    if (l == j) mj += p[k] * (T(1) - frac);
    if (u == j) mj += p[k] * frac;
  }
  return mj;
}

// The loss of one member's row: -sum_j m_j ((z_j - max) - lse_shift), in the compute type.
template <typename scalar_t, typename T>
FASTSAC_HD T categorical_td_row_loss(const scalar_t* logits, const T* m, int64_t K) {
  T mx, lse_shift;
  categorical_row_lse<scalar_t, T>(logits, K, &mx, &lse_shift);
  T loss = T(0);
  for (int64_t j = 0; j < K; ++j) loss -= m[j] * ((static_cast<T>(logits[j]) - mx) - lse_shift);
  return loss;
}

// d logits_j = g (softmax_j sum(m) - m_j) for one member's row.
template <typename scalar_t, typename T>
FASTSAC_HD void categorical_td_row_bwd(T g, const scalar_t* logits, const T* m, int64_t K, scalar_t* d_logits) {
  T mx, lse_shift;
  categorical_row_lse<scalar_t, T>(logits, K, &mx, &lse_shift);
  T mass = T(0);
  for (int64_t j = 0; j < K; ++j) mass += m[j];
  for (int64_t j = 0; j < K; ++j) {
    const T p = exp_((static_cast<T>(logits[j]) - mx) - lse_shift);
    d_logits[j] = static_cast<scalar_t>(g * (p * mass - m[j]));
  }
}

}  // namespace math
}  // namespace fastsac
