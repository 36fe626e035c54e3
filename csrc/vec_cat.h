// The float32 categorical (softmax over each row of logits) vectorized with ATen's at::vec::Vectorized<float>
// (AVX2 + FMA: 8 lanes; exp and log are the Sleef functions libtorch_cpu exports, Sleef_expf8_u10 and
// Sleef_logf8_u10, 1 ulp each, through Vectorized's exp() and log()).
//
// Compiled only where the build passes the AVX2 flags (fastsac/ops/cpu_build_flags.py); it then defines
// FASTSAC_VEC_CAT. Without them this header is empty and ops_cpu.cpp runs the scalar row functions of sac_math.h.
//
// The math is that of sac_math.h (log_softmax as torch computes it), with exp evaluated once per element:
//   mx = max_j z_j,  e_j = exp(z_j - mx),  s = sum_j e_j (j in order),  log p_j = (z_j - mx) - log s,
//   p_j = e_j * (1 / s)   (= exp(log p_j) to rounding),  H = -sum_j [p_j > 0] p_j log p_j,
//   d z_j = g_lp_j - p_j sum(g_lp) + p_j (g_p_j - sum(g_p p)) - g_H [p_j > 0] p_j (log p_j + H).
// Masked actions (z_j = -inf) give e_j = 0, p_j = 0, log p_j = -inf and add 0 to every sum.
//
// Two layouts:
//  * A <= kMaxTransA ("transposed"): 8 rows at a time, one row per lane. The group's logits (and gradients)
//    are copied into a column-major stack buffer (column j = the j-th logit of the 8 rows), every reduction over j
//    is then a plain vector op in j order, exactly the order of the scalar row functions, and the results are
//    copied back row-major. Lanes past the block's last row are filled with 0 and never stored. For A <= 8 the
//    kernels are instantiated with A known at compile time (the copies and the j loops unroll).
//  * larger A ("row-wise"): one row at a time, 8 consecutive elements per vector, the tail loaded with the padding
//    lanes set to -inf (so they are 0 after the exp and add 0 to each sum: blended, not relying on zero fill).
//    exp(z - mx) is kept in the output row itself (probs in the forward, d_logits in the backward) between the
//    passes, so any A works without scratch memory.
// The per-row entropies are added to the block's want_sum partial in row order, as the scalar path adds them.
#pragma once

#if defined(CPU_CAPABILITY_AVX2) && !defined(_MSC_VER) && (defined(__x86_64__) || defined(_M_X64))

#include <ATen/cpu/vec/vec.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdint.h>

#define FASTSAC_VEC_CAT 1

namespace fastsac {
namespace vec_cat {

using Vec = at::vec::Vectorized<float>;
constexpr int64_t kLanes = 8;
static_assert(Vec::size() == kLanes, "vec_cat.h expects 8-lane float vectors (AVX2)");
constexpr int64_t kMaxTransA = 32;  // the widest row the transposed layout takes

// NaN handling of the max does not matter: a NaN logit makes its e_j, hence s and the whole row, NaN either way.
inline Vec vmax(const Vec& a, const Vec& b) { return Vec(_mm256_max_ps(a, b)); }
// x where p > 0, else +0 (x may be NaN there: 0 * -inf).
inline Vec where_pos(const Vec& p, const Vec& x) { return x & (p > Vec(0.0f)); }
inline Vec neg(const Vec& x) { return x ^ Vec(-0.0f); }

// exp(x): ATen's Vectorized<float>::exp (Sleef_expf8_u10 from libtorch_cpu, 1 ulp, as torch's own exp on CPU).
inline Vec vexp(const Vec& x) { return x.exp(); }

inline float hsum(const Vec& v) {  // lanes added in a fixed order
  alignas(32) float t[kLanes];
  v.store(t);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}
inline float hmax(const Vec& v) {
  alignas(32) float t[kLanes];
  v.store(t);
  float m = t[0];
  for (int k = 1; k < kLanes; ++k) m = std::max(m, t[k]);
  return m;
}

// ---- transposed layout: 8 rows, one per lane ------------------------------------------------------------------
// src: cnt (<= 8) consecutive rows of A floats; dst[j * 8 + r] = src[r * A + j], rows past cnt set to 0.
template <int kA>
inline void load_t(const float* src, int64_t A, int64_t cnt, float* dst) {
  if (kA > 0) A = kA;
  if (cnt == kLanes) {
    for (int64_t r = 0; r < kLanes; ++r)
      for (int64_t j = 0; j < A; ++j) dst[j * kLanes + r] = src[r * A + j];
  } else {
    for (int64_t r = 0; r < kLanes; ++r)
      for (int64_t j = 0; j < A; ++j) dst[j * kLanes + r] = r < cnt ? src[r * A + j] : 0.0f;
  }
}

template <int kA>
inline void store_t(const float* src, int64_t A, int64_t cnt, float* dst) {
  if (kA > 0) A = kA;
  if (cnt == kLanes) {
    for (int64_t r = 0; r < kLanes; ++r)
      for (int64_t j = 0; j < A; ++j) dst[r * A + j] = src[j * kLanes + r];
  } else {
    for (int64_t r = 0; r < cnt; ++r)
      for (int64_t j = 0; j < A; ++j) dst[r * A + j] = src[j * kLanes + r];
  }
}

// In: zt (the logits, column-major). Out: et[j] = exp(z_j - mx), mx, log s, 1 / s.
template <int kA>
inline void lse_t(const float* zt, int64_t A, float* et, Vec& mx, Vec& lse, Vec& inv) {
  if (kA > 0) A = kA;
  mx = Vec::loadu(zt);
  for (int64_t j = 1; j < A; ++j) mx = vmax(mx, Vec::loadu(zt + j * kLanes));
  Vec s(0.0f);
  for (int64_t j = 0; j < A; ++j) {
    const Vec e = vexp(Vec::loadu(zt + j * kLanes) - mx);
    e.store(et + j * kLanes);
    s = s + e;
  }
  lse = s.log();
  inv = Vec(1.0f) / s;
}

constexpr int64_t kBufT = kMaxTransA * kLanes;

// Rows [r0, r0 + cnt) (cnt <= 8): probs, log_probs, the rows' entropies into h_out[0..cnt).
template <int kA>
inline void fwd_group_t(const float* z, int64_t A, int64_t cnt, float* p, float* lp, float* h_out) {
  if (kA > 0) A = kA;
  alignas(32) float zt[kBufT];
  alignas(32) float et[kBufT];
  load_t<kA>(z, A, cnt, zt);
  Vec mx, lse, inv;
  lse_t<kA>(zt, A, et, mx, lse, inv);
  Vec plogp(0.0f);
  for (int64_t j = 0; j < A; ++j) {
    const Vec l = (Vec::loadu(zt + j * kLanes) - mx) - lse;
    const Vec pj = Vec::loadu(et + j * kLanes) * inv;
    plogp = plogp + where_pos(pj, pj * l);
    pj.store(et + j * kLanes);
    l.store(zt + j * kLanes);
  }
  alignas(32) float h[kLanes];
  neg(plogp).store(h);
  store_t<kA>(et, A, cnt, p);
  store_t<kA>(zt, A, cnt, lp);
  for (int64_t r = 0; r < cnt; ++r) h_out[r] = h[r];
}

template <int kA>
inline void bwd_group_t(const float* gp, const float* glp, const float* gh, const float* z, int64_t A, int64_t cnt,
                        float* d) {
  if (kA > 0) A = kA;
  alignas(32) float zt[kBufT];
  alignas(32) float et[kBufT];
  alignas(32) float gpt[kBufT];
  alignas(32) float glt[kBufT];
  alignas(32) float ght[kLanes];
  load_t<kA>(z, A, cnt, zt);
  load_t<kA>(gp, A, cnt, gpt);
  load_t<kA>(glp, A, cnt, glt);
  for (int64_t r = 0; r < kLanes; ++r) ght[r] = r < cnt ? gh[r] : 0.0f;
  Vec mx, lse, inv;
  lse_t<kA>(zt, A, et, mx, lse, inv);
  Vec plogp(0.0f), sum_glp(0.0f), sum_gpp(0.0f);
  for (int64_t j = 0; j < A; ++j) {
    const Vec l = (Vec::loadu(zt + j * kLanes) - mx) - lse;
    const Vec pj = Vec::loadu(et + j * kLanes) * inv;
    plogp = plogp + where_pos(pj, pj * l);
    sum_glp = sum_glp + Vec::loadu(glt + j * kLanes);
    sum_gpp = sum_gpp + Vec::loadu(gpt + j * kLanes) * pj;
  }
  const Vec H = neg(plogp);
  const Vec g_h = Vec::loadu(ght);
  for (int64_t j = 0; j < A; ++j) {
    const Vec l = (Vec::loadu(zt + j * kLanes) - mx) - lse;
    const Vec pj = Vec::loadu(et + j * kLanes) * inv;
    Vec dj = Vec::loadu(glt + j * kLanes) - pj * sum_glp;
    dj = dj + pj * (Vec::loadu(gpt + j * kLanes) - sum_gpp);
    dj = dj - g_h * where_pos(pj, pj * (l + H));
    dj.store(glt + j * kLanes);
  }
  store_t<kA>(glt, A, cnt, d);
}

template <int kA>
inline float fwd_block_t(const float* z, int64_t A, int64_t r0, int64_t r1, float* p, float* lp, float* h) {
  if (kA > 0) A = kA;
  float block_sum = 0.0f;
  for (int64_t g = r0; g < r1; g += kLanes) {
    const int64_t cnt = std::min<int64_t>(kLanes, r1 - g), o = g * A;
    fwd_group_t<kA>(z + o, A, cnt, p + o, lp + o, h + g);
    for (int64_t r = g; r < g + cnt; ++r) block_sum += h[r];
  }
  return block_sum;
}

template <int kA>
inline void bwd_block_t(const float* gp, const float* glp, const float* gh, const float* z, int64_t A, int64_t r0,
                        int64_t r1, float* d) {
  if (kA > 0) A = kA;
  for (int64_t g = r0; g < r1; g += kLanes) {
    const int64_t cnt = std::min<int64_t>(kLanes, r1 - g), o = g * A;
    bwd_group_t<kA>(gp + o, glp + o, gh + g, z + o, A, cnt, d + o);
  }
}

// ---- row-wise layout: one row, 8 consecutive elements per vector ------------------------------------------------
inline Vec load_or(const float* x, int64_t cnt, float fill) {
  return cnt == kLanes ? Vec::loadu(x) : Vec::set(Vec(fill), Vec::loadu(x, cnt), cnt);
}

// Writes exp(z_j - mx) into e[0..A); returns mx, log s, 1 / s.
inline void lse_row(const float* z, int64_t A, float* e, float& mx, float& lse, float& inv) {
  const float ninf = -std::numeric_limits<float>::infinity();
  Vec vm(ninf);
  for (int64_t k = 0; k < A; k += kLanes) vm = vmax(vm, load_or(z + k, std::min(kLanes, A - k), ninf));
  mx = hmax(vm);
  const Vec vmx(mx);
  Vec s(0.0f);
  for (int64_t k = 0; k < A; k += kLanes) {
    const int64_t c = std::min(kLanes, A - k);
    const Vec ek = vexp(load_or(z + k, c, ninf) - vmx);
    ek.store(e + k, c);
    s = s + ek;
  }
  const float sum = hsum(s);
  lse = std::log(sum);
  inv = 1.0f / sum;
}

inline float fwd_row(const float* z, int64_t A, float* p, float* lp) {
  float mx, lse, inv;
  lse_row(z, A, p, mx, lse, inv);
  const Vec vmx(mx), vlse(lse), vinv(inv);
  Vec plogp(0.0f);
  for (int64_t k = 0; k < A; k += kLanes) {
    const int64_t c = std::min(kLanes, A - k);
    const Vec l = (Vec::loadu(z + k, c) - vmx) - vlse;
    const Vec pk = Vec::loadu(p + k, c) * vinv;  // padding lanes: 0
    plogp = plogp + where_pos(pk, pk * l);
    pk.store(p + k, c);
    l.store(lp + k, c);
  }
  return -hsum(plogp);
}

inline void bwd_row(const float* gp, const float* glp, float g_h, const float* z, int64_t A, float* d) {
  float mx, lse, inv;
  lse_row(z, A, d, mx, lse, inv);  // d holds exp(z - mx) until the last pass
  const Vec vmx(mx), vlse(lse), vinv(inv);
  Vec plogp(0.0f), vglp(0.0f), vgpp(0.0f);
  for (int64_t k = 0; k < A; k += kLanes) {
    const int64_t c = std::min(kLanes, A - k);
    const Vec l = (Vec::loadu(z + k, c) - vmx) - vlse;
    const Vec pk = Vec::loadu(d + k, c) * vinv;  // padding lanes: p = 0, g = 0
    plogp = plogp + where_pos(pk, pk * l);
    vglp = vglp + Vec::loadu(glp + k, c);
    vgpp = vgpp + Vec::loadu(gp + k, c) * pk;
  }
  const Vec H(-hsum(plogp)), sum_glp(hsum(vglp)), sum_gpp(hsum(vgpp)), vgh(g_h);
  for (int64_t k = 0; k < A; k += kLanes) {
    const int64_t c = std::min(kLanes, A - k);
    const Vec l = (Vec::loadu(z + k, c) - vmx) - vlse;
    const Vec pk = Vec::loadu(d + k, c) * vinv;
    Vec dk = Vec::loadu(glp + k, c) - pk * sum_glp;
    dk = dk + pk * (Vec::loadu(gp + k, c) - sum_gpp);
    dk = dk - vgh * where_pos(pk, pk * (l + H));
    dk.store(d + k, c);
  }
}

// ---- one block of rows [r0, r1): the entry points ---------------------------------------------------------------
// Forward: probs, log_probs, entropy of the rows; returns the sum of their unrounded entropies in row order.
inline float fwd_block(const float* z, int64_t A, int64_t r0, int64_t r1, float* p, float* lp, float* h) {
  switch (A) {
    case 1: return fwd_block_t<1>(z, A, r0, r1, p, lp, h);
    case 2: return fwd_block_t<2>(z, A, r0, r1, p, lp, h);
    case 3: return fwd_block_t<3>(z, A, r0, r1, p, lp, h);
    case 4: return fwd_block_t<4>(z, A, r0, r1, p, lp, h);
    case 5: return fwd_block_t<5>(z, A, r0, r1, p, lp, h);
    case 6: return fwd_block_t<6>(z, A, r0, r1, p, lp, h);
    case 7: return fwd_block_t<7>(z, A, r0, r1, p, lp, h);
    case 8: return fwd_block_t<8>(z, A, r0, r1, p, lp, h);
    default: break;
  }
  if (A <= kMaxTransA) return fwd_block_t<0>(z, A, r0, r1, p, lp, h);
  float block_sum = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * A;
    h[r] = fwd_row(z + o, A, p + o, lp + o);
    block_sum += h[r];
  }
  return block_sum;
}

inline void bwd_block(const float* gp, const float* glp, const float* gh, const float* z, int64_t A, int64_t r0,
                      int64_t r1, float* d) {
  switch (A) {
    case 1: return bwd_block_t<1>(gp, glp, gh, z, A, r0, r1, d);
    case 2: return bwd_block_t<2>(gp, glp, gh, z, A, r0, r1, d);
    case 3: return bwd_block_t<3>(gp, glp, gh, z, A, r0, r1, d);
    case 4: return bwd_block_t<4>(gp, glp, gh, z, A, r0, r1, d);
    case 5: return bwd_block_t<5>(gp, glp, gh, z, A, r0, r1, d);
    case 6: return bwd_block_t<6>(gp, glp, gh, z, A, r0, r1, d);
    case 7: return bwd_block_t<7>(gp, glp, gh, z, A, r0, r1, d);
    case 8: return bwd_block_t<8>(gp, glp, gh, z, A, r0, r1, d);
    default: break;
  }
  if (A <= kMaxTransA) return bwd_block_t<0>(gp, glp, gh, z, A, r0, r1, d);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t o = r * A;
    bwd_row(gp + o, glp + o, gh[r], z + o, A, d + o);
  }
}

// ---- the C51 projection of one sample (sac_math.h's td_project_row) ----------------------------------------------
// Where the atoms land (t, pos, l, frac and the two shares) 8 atoms at a time, then the shares merged into m in atom
// order. With gamma * not_done >= 0 the landing atoms never decrease in k (t_k is non-decreasing and so are the clip,
// pos and floor), so m is written once, front to back: `acc` holds m[cur], `next` m[cur + 1], and an atom landing
// past cur first writes out m[cur] (the zeros of atoms nothing lands on included). Each m_j is then the sum of its
// shares in atom order, as the scalar scatter adds them. The scatter's read-modify-write of m[l + 1] by neighbouring
// atoms was a store-to-load chain: ~8 ns an atom, against ~2 ns. Otherwise (a negative gamma * not_done, or NaN) the
// shares are scattered as in sac_math.h. A NaN position gives l = 0 (the integer clamp) and frac = NaN: the NaN
// reaches m and the loss, and no index goes astray.
inline void td_project_row(const float* p, float reward, float gnd, float ent, float v_min, float v_max, float dz,
                           int64_t K, float* m) {
  const __m256 vr = _mm256_set1_ps(reward), vg = _mm256_set1_ps(gnd), ve = _mm256_set1_ps(ent);
  const __m256 vlo = _mm256_set1_ps(v_min), vhi = _mm256_set1_ps(v_max), vdz = _mm256_set1_ps(dz);
  const __m256 vtop = _mm256_set1_ps(static_cast<float>(K - 1)), zero = _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.0f), iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i top_i = _mm256_set1_epi32(static_cast<int>(K - 1)), zero_i = _mm256_setzero_si256();
  const bool monotone = gnd >= 0.0f;
  if (!monotone) std::fill(m, m + K, 0.0f);
  alignas(32) float a[kLanes], b[kLanes];
  alignas(32) int32_t lo[kLanes];
  int64_t cur = 0;
  float acc = 0.0f, next = 0.0f;
  for (int64_t k0 = 0; k0 < K; k0 += kLanes) {
    const int64_t c = std::min(kLanes, K - k0);
    const __m256 z = _mm256_add_ps(vlo, _mm256_mul_ps(_mm256_add_ps(_mm256_set1_ps(static_cast<float>(k0)), iota), vdz));
    __m256 t = _mm256_add_ps(vr, _mm256_mul_ps(vg, _mm256_sub_ps(z, ve)));
    t = _mm256_min_ps(vhi, _mm256_max_ps(vlo, t));  // max/min(x, NaN) return the NaN: it propagates
    __m256 pos = _mm256_div_ps(_mm256_sub_ps(t, vlo), vdz);
    pos = _mm256_min_ps(vtop, _mm256_max_ps(zero, pos));
    __m256i li = _mm256_cvttps_epi32(_mm256_floor_ps(pos));  // NaN -> INT_MIN, clamped to 0 below
    li = _mm256_min_epi32(top_i, _mm256_max_epi32(zero_i, li));
    const __m256 frac = _mm256_sub_ps(pos, _mm256_cvtepi32_ps(li));
    const __m256 pk = Vec::loadu(p + k0, c);  // padding lanes: 0 (never read back)
    _mm256_store_ps(a, _mm256_mul_ps(pk, _mm256_sub_ps(one, frac)));
    _mm256_store_ps(b, _mm256_mul_ps(pk, frac));
    _mm256_store_si256(reinterpret_cast<__m256i*>(lo), li);
    if (monotone) {
      for (int64_t i = 0; i < c; ++i) {
        for (const int64_t l = lo[i]; cur < l; ++cur) {  // l >= cur here; an l < cur cannot occur (and is safe)
          m[cur] = acc;
          acc = next;
          next = 0.0f;
        }
        acc += a[i];
        if (cur + 1 < K) {
          next += b[i];
        } else {
          acc += b[i];  // l = K - 1: u = l (and frac = 0)
        }
      }
    } else {
      for (int64_t i = 0; i < c; ++i) {
        const int64_t l = lo[i];
        m[l] += a[i];
        m[l + 1 < K ? l + 1 : l] += b[i];
      }
    }
  }
  if (monotone) {
    m[cur] = acc;
    if (cur + 1 < K) m[cur + 1] = next;
    for (int64_t j = cur + 2; j < K; ++j) m[j] = 0.0f;
  }
}

// ---- the categorical TD loss (sac_math.h's categorical_td_row_loss / _row_bwd), one row at a time ---------------
// loss = sum_j m_j (log s - (z_j - mx)) = log s * sum(m) - sum_j m_j (z_j - mx): two sums of non-negative terms
// (z_j <= mx, s >= 1) formed in the one pass that forms s, so nothing cancels. The tail's padding lanes: -inf
// logits for the exp (0), zero m and zero logits for the two sums (0).
inline float td_row_loss(const float* z, const float* m, int64_t K) {
  const float ninf = -std::numeric_limits<float>::infinity();
  Vec vm(ninf);
  for (int64_t k = 0; k < K; k += kLanes) vm = vmax(vm, load_or(z + k, std::min(kLanes, K - k), ninf));
  const float mx = hmax(vm);
  const Vec vmx(mx);
  Vec s(0.0f), mass(0.0f), dot(0.0f);
  for (int64_t k = 0; k < K; k += kLanes) {
    const int64_t c = std::min(kLanes, K - k);
    s = s + vexp(load_or(z + k, c, ninf) - vmx);
    const Vec mk = Vec::loadu(m + k, c);
    mass = mass + mk;
    dot = dot + mk * (Vec::loadu(z + k, c) - vmx);
  }
  return std::log(hsum(s)) * hsum(mass) - hsum(dot);
}

// d z_j = g (p_j sum(m) - m_j); d holds exp(z_j - mx) between the passes; sum(m) is formed in the max pass.
inline void td_row_bwd(float g, const float* z, const float* m, int64_t K, float* d) {
  const float ninf = -std::numeric_limits<float>::infinity();
  Vec vm(ninf), vmass(0.0f);
  for (int64_t k = 0; k < K; k += kLanes) {
    const int64_t c = std::min(kLanes, K - k);
    vm = vmax(vm, load_or(z + k, c, ninf));
    vmass = vmass + Vec::loadu(m + k, c);
  }
  const Vec vmx(hmax(vm));
  Vec s(0.0f);
  for (int64_t k = 0; k < K; k += kLanes) {
    const int64_t c = std::min(kLanes, K - k);
    const Vec ek = vexp(load_or(z + k, c, ninf) - vmx);
    ek.store(d + k, c);
    s = s + ek;
  }
  const Vec scale(hsum(vmass) / hsum(s)), vg(g);
  for (int64_t k = 0; k < K; k += kLanes) {
    const int64_t c = std::min(kLanes, K - k);
    const Vec dk = vg * (Vec::loadu(d + k, c) * scale - Vec::loadu(m + k, c));
    dk.store(d + k, c);
  }
}

}  // namespace vec_cat
}  // namespace fastsac

#endif  // CPU_CAPABILITY_AVX2
