// The float32 tanh-squashed Gaussian vectorized with ATen's at::vec::Vectorized<float> (AVX2 + FMA: 8 lanes,
// exp and log1p are the Sleef functions libtorch_cpu exports, Sleef_expf8_u10 / Sleef_log1pf8_u10, 1 ulp).
//
// Compiled only where the build passes the AVX2 flags (fastsac/ops/cpu_build_flags.py: -mavx2 -mfma
// -DCPU_CAPABILITY=AVX2 -DCPU_CAPABILITY_AVX2); it then defines FASTSAC_VEC_SG. Without them this header is
// empty and ops_cpu.cpp runs the scalar row functions of sac_math.h for every dtype.
//
// The formulas are those of sac_math.h, term by term and in the same order (see its header comment):
//   e = exp(-2|u|),  tanh(u) = sign(u) (1 - e) / (1 + e),  1 - tanh(u)^2 = 4 e / (1 + e)^2,
//   log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(e)),
// exact and finite for any finite u. A block of rows is processed as one flat run of rows*A elements (the
// per-element work has no row structure); what is per row (the log-prob summed over j in order, the per-column
// scale and bias, the row's incoming g_lp) is done by a short scalar pass over the same rows, through a small
// buffer on the stack. The row sums, and so the per-block partials of want_sum, are formed exactly as the
// scalar path forms them: fixed blocks, rows in order, j = 0..A-1 in order.
#pragma once

#if defined(CPU_CAPABILITY_AVX2) && !defined(_MSC_VER) && (defined(__x86_64__) || defined(_M_X64))

#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <stdint.h>
#include <vector>

#include "sac_math.h"

#define FASTSAC_VEC_SG 1

namespace fastsac {
namespace vec_sg {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = Vec::size();
// Elements per scratch buffer (16 KiB): a block of 256 rows in one pass up to A = 16, fewer rows at a time above.
constexpr int64_t kBufElems = 4096;

// mag (>= 0, or NaN) with the sign bit of u: copysign without the library call.
inline Vec with_sign_of(const Vec& mag, const Vec& u) { return mag | (u & Vec(-0.0f)); }

struct VTanh {
  Vec abs_u, e, one_plus_e, a;  // |u|, exp(-2|u|), 1 + e, tanh(u)
};

inline VTanh vtanh(const Vec& u) {
  VTanh t;
  t.abs_u = u.abs();
  t.e = (Vec(-2.0f) * t.abs_u).exp();
  t.one_plus_e = Vec(1.0f) + t.e;
  t.a = with_sign_of((Vec(1.0f) - t.e) / t.one_plus_e, u);
  return t;
}

// 1 - tanh(u)^2 = 4 e / (1 + e)^2
inline Vec one_minus_a2(const VTanh& t) { return Vec(4.0f) * t.e / (t.one_plus_e * t.one_plus_e); }

// log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(e))
inline Vec log_one_minus_a2(const VTanh& t) {
  return Vec(2.0f) * (Vec(math::log_2<float>()) - t.abs_u - t.e.log1p());
}

// ---- forward: cnt (<= kLanes) elements -> tanh(u) (before scale/bias) and the element's log-prob term ---------
template <bool kBounds>
inline void fwd_vec(const float* m, const float* s_in, const float* n, int64_t cnt, const Vec& lo,
                    const Vec& half_range, float* a_out, float* term_out) {
  const Vec vm = Vec::loadu(m, cnt);
  const Vec vn = Vec::loadu(n, cnt);
  Vec s = Vec::loadu(s_in, cnt);
  if (kBounds) s = lo + half_range * (vtanh(s).a + Vec(1.0f));
  const Vec u = vm + s.exp() * vn;
  const VTanh t = vtanh(u);
  const Vec term = Vec(-0.5f) * (vn * vn) - s - Vec(math::log_sqrt_2pi<float>()) - log_one_minus_a2(t);
  t.a.store(a_out, cnt);
  term.store(term_out, cnt);
}

template <bool kBounds>
inline void fwd_elems_t(const float* m, const float* s, const float* n, int64_t count, const math::Bounds<float>& b,
                        float* a_out, float* term_out) {
  const Vec lo(b.lo), half_range(b.half_range);
  int64_t k = 0;
  for (; k + kLanes <= count; k += kLanes) {
    fwd_vec<kBounds>(m + k, s + k, n + k, kLanes, lo, half_range, a_out + k, term_out + k);
  }
  if (k < count) fwd_vec<kBounds>(m + k, s + k, n + k, count - k, lo, half_range, a_out + k, term_out + k);
}

inline void fwd_elems(const float* m, const float* s, const float* n, int64_t count, const math::Bounds<float>& b,
                      float* a_out, float* term_out) {
  if (b.on) {
    fwd_elems_t<true>(m, s, n, count, b, a_out, term_out);
  } else {
    fwd_elems_t<false>(m, s, n, count, b, a_out, term_out);
  }
}

// Forward of the rows [r0, r1) of one block: writes action and log_prob, returns the sum of the rows' unrounded
// log-probs in row order. log_abs_scale: sum over j in order of log|scale_j| (0 without scale).
inline float fwd_block(const float* m, const float* s, const float* n, const float* sc, const float* bi,
                       float log_abs_scale, const math::Bounds<float>& b, int64_t r0, int64_t r1, int64_t A,
                       float* act, float* lp) {
  float stack_buf[kBufElems];
  std::vector<float> heap_buf;
  float* terms = stack_buf;
  int64_t rows_per_pass = kBufElems / A;
  if (rows_per_pass == 0) {
    heap_buf.resize(static_cast<size_t>(A));
    terms = heap_buf.data();
    rows_per_pass = 1;
  }
  float block_sum = 0.0f;
  for (int64_t c0 = r0; c0 < r1; c0 += rows_per_pass) {
    const int64_t c1 = std::min(r1, c0 + rows_per_pass);
    const int64_t o = c0 * A;
    fwd_elems(m + o, s + o, n + o, (c1 - c0) * A, b, act + o, terms);
    const float* t = terms;
    for (int64_t r = c0; r < c1; ++r, t += A) {
      float row = 0.0f;
      for (int64_t j = 0; j < A; ++j) row += t[j];
      row = row - log_abs_scale;
      lp[r] = row;
      block_sum += row;
    }
    if (sc != nullptr || bi != nullptr) {
      float* a = act + o;
      for (int64_t r = c0; r < c1; ++r, a += A) {
        if (sc != nullptr && bi != nullptr) {
          for (int64_t j = 0; j < A; ++j) a[j] = a[j] * sc[j] + bi[j];
        } else if (sc != nullptr) {
          for (int64_t j = 0; j < A; ++j) a[j] = a[j] * sc[j];
        } else {
          for (int64_t j = 0; j < A; ++j) a[j] = a[j] + bi[j];
        }
      }
    }
  }
  return block_sum;
}

// ---- backward: cnt (<= kLanes) elements ----------------------------------------------------------------------
// g_a: incoming action gradient already times scale; g_lp: the row's log-prob gradient, one per element.
template <bool kBounds>
inline void bwd_vec(const float* g_a, const float* g_lp, const float* m, const float* s_in, const float* n,
                    int64_t cnt, const Vec& lo, const Vec& half_range, float* d_mean, float* d_log_std) {
  const Vec ga = Vec::loadu(g_a, cnt);
  const Vec gl = Vec::loadu(g_lp, cnt);
  const Vec vm = Vec::loadu(m, cnt);
  const Vec vn = Vec::loadu(n, cnt);
  Vec s = Vec::loadu(s_in, cnt);
  Vec one_minus_t2;
  if (kBounds) {
    const VTanh tr = vtanh(s);
    one_minus_t2 = one_minus_a2(tr);
    s = lo + half_range * (tr.a + Vec(1.0f));
  }
  const Vec sigma = s.exp();
  const Vec u = vm + sigma * vn;
  const VTanh t = vtanh(u);
  const Vec d_u = ga * one_minus_a2(t) + gl * Vec(2.0f) * t.a;
  Vec d_s = d_u * sigma * vn - gl;
  if (kBounds) d_s = d_s * half_range * one_minus_t2;
  d_u.store(d_mean, cnt);
  d_s.store(d_log_std, cnt);
}

template <bool kBounds>
inline void bwd_elems_t(const float* g_a, const float* g_lp, const float* m, const float* s, const float* n,
                        int64_t count, const math::Bounds<float>& b, float* d_mean, float* d_log_std) {
  const Vec lo(b.lo), half_range(b.half_range);
  int64_t k = 0;
  for (; k + kLanes <= count; k += kLanes) {
    bwd_vec<kBounds>(g_a + k, g_lp + k, m + k, s + k, n + k, kLanes, lo, half_range, d_mean + k, d_log_std + k);
  }
  if (k < count) {
    bwd_vec<kBounds>(g_a + k, g_lp + k, m + k, s + k, n + k, count - k, lo, half_range, d_mean + k,
                     d_log_std + k);
  }
}

// Backward of the rows [r0, r1) of one block.
inline void bwd_block(const float* ga, const float* glp, const float* m, const float* s, const float* n,
                      const float* sc, const math::Bounds<float>& b, int64_t r0, int64_t r1, int64_t A, float* dm,
                      float* ds) {
  float gl_stack[kBufElems];
  float gs_stack[kBufElems];
  std::vector<float> heap_buf;
  float* gl = gl_stack;  // g_lp of each element's row
  float* gs = gs_stack;  // g_a * scale (only with scale)
  int64_t rows_per_pass = kBufElems / A;
  if (rows_per_pass == 0) {
    heap_buf.resize(2 * static_cast<size_t>(A));
    gl = heap_buf.data();
    gs = gl + A;
    rows_per_pass = 1;
  }
  for (int64_t c0 = r0; c0 < r1; c0 += rows_per_pass) {
    const int64_t c1 = std::min(r1, c0 + rows_per_pass);
    const int64_t o = c0 * A, count = (c1 - c0) * A;
    float* g = gl;
    for (int64_t r = c0; r < c1; ++r, g += A) {
      const float v = glp[r];
      for (int64_t j = 0; j < A; ++j) g[j] = v;
    }
    const float* g_a = ga + o;
    if (sc != nullptr) {
      float* x = gs;
      const float* y = ga + o;
      for (int64_t r = c0; r < c1; ++r, x += A, y += A) {
        for (int64_t j = 0; j < A; ++j) x[j] = y[j] * sc[j];
      }
      g_a = gs;
    }
    if (b.on) {
      bwd_elems_t<true>(g_a, gl, m + o, s + o, n + o, count, b, dm + o, ds + o);
    } else {
      bwd_elems_t<false>(g_a, gl, m + o, s + o, n + o, count, b, dm + o, ds + o);
    }
  }
}

}  // namespace vec_sg
}  // namespace fastsac

#endif  // CPU_CAPABILITY_AVX2
