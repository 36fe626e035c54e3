// ForeachAdam.step (fastsac/agents/optim.py) on float32 CPU tensors, shared by the native updates
// (sac_update_cpu.cpp, crossq_update_cpu.cpp): one pass per tensor, the same operations in the same order as the
// Python optimizer: m = lerp(m, g, 1 - beta1); v = v * beta2 + (1 - beta2) * g * g;
// p += (m / (sqrt(v) / bc2 + eps)) * step_size; then the step count, beta powers and next step's factors.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <cmath>
#include <vector>

#include "sac_update.h"

namespace fastsac {

using Tensor = at::Tensor;
using Tensors = std::vector<Tensor>;
using Vec = at::vec::Vectorized<float>;

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

}  // namespace fastsac
