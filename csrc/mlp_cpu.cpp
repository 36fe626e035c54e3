// The ReLU MLP pieces the native updates share: see mlp_cpu.h.
#include "mlp_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>

namespace fastsac {

using at::Tensor;
using Vec = at::vec::Vectorized<float>;

// out (rows, n) += bias[row] per row (feature-major: one bias per row), then max(., 0) when relu.
void add_row_bias_(Tensor& out, const Tensor& bias, bool relu) {
  const int64_t rows = bias.numel(), n = out.numel() / rows;
  float* o = out.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = o + r * n;
      const Vec br(b[r]), zero(0.0f);
      int64_t j = 0;
      for (; j + Vec::size() <= n; j += Vec::size()) {
        const Vec x = Vec::loadu(row + j) + br;
        (relu ? at::vec::maximum(x, zero) : x).store(row + j);
      }
      for (; j < n; ++j) row[j] = relu ? std::max(row[j] + b[r], 0.0f) : row[j] + b[r];
    }
  });
}

// out (rows, n) += bias[col] per column (batch-major), then max(., 0).
void add_col_bias_relu_(Tensor& out, const Tensor& bias) {
  const int64_t n = bias.numel(), rows = out.numel() / n;
  float* o = out.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    const Vec zero(0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      float* row = o + r * n;
      int64_t j = 0;
      for (; j + Vec::size() <= n; j += Vec::size()) {
        at::vec::maximum(Vec::loadu(row + j) + Vec::loadu(b + j), zero).store(row + j);
      }
      for (; j < n; ++j) row[j] = std::max(row[j] + b[j], 0.0f);
    }
  });
}

// grad *= (activation > 0), in place: the ReLU's backward read from its output.
void relu_mask_(Tensor& grad, const Tensor& activation) {
  float* g = grad.data_ptr<float>();
  const float* a = activation.data_ptr<float>();
  at::parallel_for(0, grad.numel(), 8192, [&](int64_t i0, int64_t i1) {
    const Vec zero(0.0f);
    int64_t i = i0;
    for (; i + Vec::size() <= i1; i += Vec::size()) {
      Vec::blendv(zero, Vec::loadu(g + i), Vec::loadu(a + i) > zero).store(g + i);
    }
    for (; i < i1; ++i) g[i] = a[i] > 0.0f ? g[i] : 0.0f;
  });
}

// The gradient below a one-output layer, masked by the ReLU under it: out[c, i, b] = w[c, 0, i] * d[c, 0, b] where
// act[c, i, b] > 0 (an outer product: a matrix product with an inner size of 1 is slow in BLAS).
Tensor outer_relu_backward(const Tensor& w, const Tensor& d, const Tensor& act) {
  const int64_t C = act.size(0), I = act.size(1), B = act.size(2);
  Tensor out = at::empty_like(act);
  const float* wp = w.data_ptr<float>();
  const float* dp = d.data_ptr<float>();
  const float* ap = act.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, C * I, 16, [&](int64_t r0, int64_t r1) {
    const Vec zero(0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r / I;
      const Vec wi(wp[r]);  // w is (C, 1, I): w[c, 0, i] is at r = c * I + i
      const float* drow = dp + c * B;
      const float* arow = ap + r * B;
      float* orow = op + r * B;
      int64_t b = 0;
      for (; b + Vec::size() <= B; b += Vec::size()) {
        Vec::blendv(zero, wi * Vec::loadu(drow + b), Vec::loadu(arow + b) > zero).store(orow + b);
      }
      for (; b < B; ++b) orow[b] = arow[b] > 0.0f ? wp[r] * drow[b] : 0.0f;
    }
  });
  return out;
}

CriticPass critic_forward(const Tensors& p, const Tensor& xt) {
  const int64_t C = p[0].size(0), layers = static_cast<int64_t>(p.size()) / 2;
  CriticPass pass;
  Tensor h = xt.unsqueeze(0).expand({C, xt.size(0), xt.size(1)});
  for (int64_t l = 0; l < layers; ++l) {
    Tensor out = at::bmm(p[2 * l], h);
    add_row_bias_(out, p[2 * l + 1], l + 1 < layers);
    pass.acts.push_back(out);
    h = out;
  }
  return pass;
}

Tensor critic_backward(const Tensors& p, const CriticPass& pass, const Tensor& xt, Tensor d, bool want_weights,
                       Tensors* grads) {
  const int64_t layers = static_cast<int64_t>(p.size()) / 2;
  const int64_t C = p[0].size(0);
  for (int64_t l = layers - 1; l >= 0; --l) {
    const Tensor input = l > 0 ? pass.acts[l - 1] : xt.unsqueeze(0).expand({C, xt.size(0), xt.size(1)});
    if (want_weights) {
      (*grads)[2 * l] = at::bmm(d, input.transpose(1, 2));
      (*grads)[2 * l + 1] = d.sum(2);
    }
    if (l == 0) break;
    if (d.size(1) == 1) {
      d = outer_relu_backward(p[2 * l], d, pass.acts[l - 1]);
    } else {
      d = at::bmm(p[2 * l].transpose(1, 2), d);
      relu_mask_(d, pass.acts[l - 1]);
    }
  }
  return d;
}

SquaredError scalar_critic_step(const Tensors& critic, const AdamRef& opt, const Tensor& xt, const Tensor& y,
                                const int64_t* at) {
  const CriticPass pass = critic_forward(critic, xt);
  const Tensor& values = pass.acts.back();  // (C, outputs, B)
  const int64_t C = values.size(0), outputs = values.size(1), B = values.size(2);
  // squared_error writes every place when there is one output; otherwise only the taken ones.
  Tensor d = at == nullptr ? at::empty_like(values) : at::zeros_like(values);
  const SquaredError error =
      squared_error(values.data_ptr<float>(), y.data_ptr<float>(), C, B, outputs * B, at, d.data_ptr<float>());
  Tensors grads(critic.size());
  critic_backward(critic, pass, xt, d, true, &grads);
  adam_step(opt, critic, grads);
  return error;
}

Tensors relu_trunk_forward(const Tensors& p, int64_t layers, const Tensor& x) {
  Tensors acts;
  Tensor h = x;
  for (int64_t l = 0; l < layers; ++l) {
    Tensor out = at::mm(h, p[2 * l].t());
    add_col_bias_relu_(out, p[2 * l + 1]);
    acts.push_back(out);
    h = out;
  }
  return acts;
}

void relu_trunk_backward(const Tensors& p, int64_t layers, const Tensors& acts, const Tensor& x, Tensor d,
                         Tensors& g) {
  for (int64_t l = layers - 1; l >= 0; --l) {
    relu_mask_(d, acts[l]);
    const Tensor& input = l > 0 ? acts[l - 1] : x;
    g[2 * l] = at::mm(d.t(), input);
    g[2 * l + 1] = d.sum(0);
    if (l > 0) d = at::mm(d, p[2 * l]);
  }
}

// target <- target + tau * (source - target) (torch.lerp for tau below 0.5), per tensor.
void lerp_(const Tensors& target, const Tensors& source, double tau) {
  const float w = static_cast<float>(tau);
  for (size_t k = 0; k < target.size(); ++k) {
    float* t = target[k].data_ptr<float>();
    const float* s = source[k].data_ptr<float>();
    at::parallel_for(0, target[k].numel(), 8192, [&](int64_t i0, int64_t i1) {
      const Vec vw(w);
      int64_t i = i0;
      for (; i + Vec::size() <= i1; i += Vec::size()) {
        const Vec ti = Vec::loadu(t + i);
        (ti + vw * (Vec::loadu(s + i) - ti)).store(t + i);
      }
      for (; i < i1; ++i) t[i] += w * (s[i] - t[i]);
    });
  }
}

}  // namespace fastsac
