// The ReLU MLP pieces the native updates share (mlp_cpu.cpp): stacked critic members run feature-major, a batch-major
// trunk, bias and ReLU in place, the ReLU's backward read from its output, the Polyak lerp. Float32, contiguous CPU
// tensors: the updates check every tensor before they call these (sac_update_check.cpp, discrete_sac_update_check.cpp).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "sac_update.h"

namespace fastsac {

using Tensors = std::vector<at::Tensor>;

// out (rows, n) += bias[row] per row (feature-major: one bias per row), then max(., 0) when relu.
void add_row_bias_(at::Tensor& out, const at::Tensor& bias, bool relu);
// out (rows, n) += bias[col] per column (batch-major), then max(., 0).
void add_col_bias_relu_(at::Tensor& out, const at::Tensor& bias);
// grad *= (activation > 0), in place: the ReLU's backward read from its output.
void relu_mask_(at::Tensor& grad, const at::Tensor& activation);
// The gradient below a one-output layer, masked by the ReLU under it: out[c, i, b] = w[c, 0, i] * d[c, 0, b] where
// act[c, i, b] > 0 (an outer product: a matrix product with an inner size of 1 is slow in BLAS).
at::Tensor outer_relu_backward(const at::Tensor& w, const at::Tensor& d, const at::Tensor& act);

// C stacked MLPs, feature-major: activations (C, features, batch); params [W0, b0, W1, b1, ...], W (C, out, in); ReLU
// after every layer but the last.
struct CriticPass {
  Tensors acts;  // acts[l]: the output of layer l (after its ReLU but for the last); the last is (C, outputs, B)
};
CriticPass critic_forward(const Tensors& p, const at::Tensor& xt);  // xt: (in, B), shared by the members
// Backward from d (C, outputs, B), the gradient of the last layer's output: fills grads (the layout of p) when
// want_weights, and returns the gradient of the first layer's output (C, h1, B), masked by its ReLU.
at::Tensor critic_backward(const Tensors& p, const CriticPass& pass, const at::Tensor& xt, at::Tensor d,
                           bool want_weights, Tensors* grads);
// One step of the scalar critics (SAC's and discrete SAC's): critic_forward, the squared error of the values at
// `at` against y (squared_error: at[b] indexes a member's (outputs, B) values; nullptr when outputs is 1: value b),
// its gradient through critic_backward, and Adam on the weights. Returns the error's metrics.
SquaredError scalar_critic_step(const Tensors& critic, const AdamRef& opt, const at::Tensor& xt, const at::Tensor& y,
                                const int64_t* at);

// A batch-major ReLU trunk: p[0 .. 2 * layers) = [W0, b0, ...] (nn.Linear: W (out, in)); each layer's output after
// its ReLU, (B, width).
Tensors relu_trunk_forward(const Tensors& p, int64_t layers, const at::Tensor& x);
// From d (B, width), the gradient of the trunk's last output (before its ReLU mask), into g[0 .. 2 * layers).
void relu_trunk_backward(const Tensors& p, int64_t layers, const Tensors& acts, const at::Tensor& x, at::Tensor d,
                    Tensors& g);

// target <- target + tau * (source - target) (torch.lerp for tau below 0.5), per tensor.
void lerp_(const Tensors& target, const Tensors& source, double tau);

}  // namespace fastsac
