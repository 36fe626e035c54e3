// What the native updates (sac_update_cpu.cpp, crossq_update_cpu.cpp, discrete_sac_update_cpu.cpp) share:
// ForeachAdam's step, the min over the critic members with its gradient's share, the critics' squared error and the
// metric sums.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "sac_update.h"

namespace fastsac {

using Tensor = at::Tensor;
using Tensors = std::vector<Tensor>;
using Vec = at::vec::Vectorized<float>;

// ForeachAdam.step (fastsac/agents/optim.py) on float32 CPU tensors: one pass per tensor, the same operations in
// the same order as the Python optimizer: m = lerp(m, g, 1 - beta1); v = v * beta2 + (1 - beta2) * g * g;
// p += (m / (sqrt(v) / bc2 + eps)) * step_size; then the step count, beta powers and next step's factors.
void adam_step(const AdamRef& opt, const Tensors& params, const Tensors& grads) {
  const float w = static_cast<float>(1.0 - opt.beta1), beta2 = static_cast<float>(opt.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - opt.beta2), eps = static_cast<float>(opt.eps);
  const float step_size = opt.step_size.item<float>(), bc2 = opt.bias_correction2_sqrt.item<float>();
  for (size_t k = 0; k < params.size(); ++k) {
    float* p = params[k].data_ptr<float>();
    float* m = opt.exp_avg[k].data_ptr<float>();
    float* v = opt.exp_avg_sq[k].data_ptr<float>();
    const Tensor g_c = grads[k].contiguous();
    const float* g = g_c.data_ptr<float>();
    at::parallel_for(0, params[k].numel(), 8192, [&](int64_t i0, int64_t i1) {
      const Vec vw(w), vbeta2(beta2), vone_minus_beta2(one_minus_beta2), veps(eps), vbc2(bc2), vstep(step_size);
      int64_t i = i0;
      for (; i + Vec::size() <= i1; i += Vec::size()) {
        const Vec gi = Vec::loadu(g + i), m0 = Vec::loadu(m + i);
        const Vec mi = m0 + vw * (gi - m0);  // torch.lerp for a weight below 0.5
        const Vec vi = Vec::loadu(v + i) * vbeta2 + vone_minus_beta2 * gi * gi;
        mi.store(m + i);
        vi.store(v + i);
        (Vec::loadu(p + i) + (mi / (vi.sqrt() / vbc2 + veps)) * vstep).store(p + i);
      }
      for (; i < i1; ++i) {
        const float gi = g[i];
        const float mi = m[i] + w * (gi - m[i]);
        const float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] += (mi / (std::sqrt(vi) / bc2 + eps)) * step_size;
      }
    });
  }
  opt.step_count.add_(1.0);
  opt.beta_pows.mul_(opt.betas);
  // The next step's factors, as ForeachAdam._prepare_next_step forms them in float64 (Python's lr / t is
  // reciprocal(t) * lr), rounded to float32.
  const double* pows = opt.beta_pows.data_ptr<double>();
  const double* betas = opt.betas.data_ptr<double>();
  const double next0 = pows[0] * betas[0], next1 = pows[1] * betas[1];
  opt.step_size.fill_(static_cast<float>((1.0 / (1.0 - next0)) * -opt.lr));
  opt.bias_correction2_sqrt.fill_(static_cast<float>(std::sqrt(1.0 - next1)));
}

// min over the members of values (C, B), and the members' share of the min's gradient: 1 / (number of members
// equal to the min) where a member is the min, else 0 (torch.amin's backward).
std::tuple<Tensor, Tensor> min_over_members(const Tensor& values) {
  const int64_t C = values.size(0), B = values.size(1);
  Tensor vmin = at::empty({B}, values.options()), share = at::empty_like(values);
  const float* v = values.data_ptr<float>();
  float* m = vmin.data_ptr<float>();
  float* s = share.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    float best = v[b];
    for (int64_t c = 1; c < C; ++c) best = std::min(best, v[c * B + b]);
    int64_t ties = 0;
    for (int64_t c = 0; c < C; ++c) ties += v[c * B + b] == best;
    for (int64_t c = 0; c < C; ++c) s[c * B + b] = v[c * B + b] == best ? 1.0f / static_cast<float>(ties) : 0.0f;
    m[b] = best;
  }
  return {vmin, share};
}

SquaredError squared_error(const float* q, const float* y, int64_t C, int64_t B, int64_t member_stride,
                           const int64_t* at, float* dq) {
  double loss = 0.0, qsum = 0.0;
  for (int64_t c = 0; c < C; ++c) {
    float member = 0.0f;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = c * member_stride + (at == nullptr ? b : at[b]);
      const float diff = q[i] - y[b];
      member += diff * diff;
      dq[i] = 2.0f * diff / static_cast<float>(B);
      qsum += q[i];
    }
    loss += member / static_cast<float>(B);
  }
  return {static_cast<float>(loss), static_cast<float>(qsum / static_cast<double>(C * B))};
}

void add_metric_sums(const Tensor& sums, const SquaredError& critic, const std::optional<ActorMetrics>& actor) {
  float* s = sums.data_ptr<float>();
  s[0] += critic.loss;
  s[1] += critic.q_mean;
  s[2] += 1.0f;
  if (actor.has_value()) {
    s[3] += actor->loss;
    s[4] += actor->entropy;
    s[5] += actor->alpha_loss;
    s[6] += 1.0f;
  }
}

}  // namespace fastsac
