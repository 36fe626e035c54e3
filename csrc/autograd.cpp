// The two ops as C++ autograd functions over the validated entry points of bindings.cpp: what the eager path of
// fastsac.ops calls for CPU tensors when a gradient is wanted (fastsac/ops/squashed_gaussian.py, categorical.py).
// The node and its backward live in C++, so an eager call costs one pybind call and the backward no Python at all
// (a Python torch.autograd.Function costs ~10-20 us a call on a CPU, the size of a whole batch-1 op).
// Semantics: fastsac/ops/reference.py; the backward is the closed form every backend implements. Gradients reach
// mean and log_std (the squashed Gaussian) and the logits (the categorical) only; an output's unused gradient
// arrives undefined and counts as zero; the want_sum total is not differentiable.
#include <torch/autograd.h>

#include "ops.h"

namespace fastsac {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// An incoming gradient as the primitives take it: real and contiguous (a sum's backward hands over a stride-0
// expanded tensor; an unused output's gradient is undefined).
Tensor incoming(const Tensor& grad, const Tensor& like, at::IntArrayRef shape) {
  return grad.defined() ? grad.contiguous() : at::zeros(shape, like.options());
}

struct SquashedGaussianFunction : public torch::autograd::Function<SquashedGaussianFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& mean, const Tensor& log_std, const Tensor& noise,
                               const OptTensor& scale, const OptTensor& bias, std::optional<double> lo,
                               std::optional<double> hi, bool want_sum) {
    auto [action, log_prob, lp_sum] = squashed_gaussian_fwd(mean, log_std, noise, scale, bias, lo, hi, want_sum);
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({mean, log_std, noise, scale.has_value() ? *scale : Tensor()});
    ctx->saved_data["lo"] = lo.has_value() ? c10::IValue(*lo) : c10::IValue();
    ctx->saved_data["hi"] = hi.has_value() ? c10::IValue(*hi) : c10::IValue();
    const Tensor total = lp_sum.has_value() ? *lp_sum : mean.new_empty({0});  // a node's outputs must be defined
    ctx->mark_non_differentiable({total});
    return {action, log_prob, total};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(8);  // mean, log_std, then no gradient for noise, scale, bias, lo, hi, want_sum
    if (!grads[0].defined() && !grads[1].defined()) return out;
    const variable_list saved = ctx->get_saved_variables();
    const Tensor& mean = saved[0];
    const OptTensor scale = saved[3].defined() ? OptTensor(saved[3]) : OptTensor();
    const c10::IValue lo = ctx->saved_data["lo"], hi = ctx->saved_data["hi"];
    auto [d_mean, d_log_std] = squashed_gaussian_bwd(
        incoming(grads[0], mean, mean.sizes()), incoming(grads[1], mean, {mean.size(0)}), mean, saved[1], saved[2],
        scale, lo.isNone() ? std::nullopt : std::optional<double>(lo.toDouble()),
        hi.isNone() ? std::nullopt : std::optional<double>(hi.toDouble()));
    out[0] = d_mean;
    out[1] = d_log_std;
    return out;
  }
};

struct CategoricalFunction : public torch::autograd::Function<CategoricalFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, bool want_sum) {
    auto [probs, log_probs, entropy, entropy_sum] = categorical_fwd(logits, want_sum);
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({logits});
    const Tensor total = entropy_sum.has_value() ? *entropy_sum : logits.new_empty({0});  // outputs must be defined
    ctx->mark_non_differentiable({total});
    return {probs, log_probs, entropy, total};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(2);  // logits, then no gradient for want_sum
    if (!grads[0].defined() && !grads[1].defined() && !grads[2].defined()) return out;
    const Tensor logits = ctx->get_saved_variables()[0];
    out[0] = categorical_bwd(incoming(grads[0], logits, logits.sizes()), incoming(grads[1], logits, logits.sizes()),
                             incoming(grads[2], logits, {logits.size(0)}), logits);
    return out;
  }
};


}  // namespace

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_autograd(const Tensor& mean, const Tensor& log_std,
                                                                 const Tensor& noise, const OptTensor& scale,
                                                                 const OptTensor& bias, std::optional<double> lo,
                                                                 std::optional<double> hi, bool want_sum) {
  variable_list r = SquashedGaussianFunction::apply(mean, log_std, noise, scale, bias, lo, hi, want_sum);
  return {r[0], r[1], want_sum ? OptTensor(r[2]) : OptTensor()};
}

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_autograd(const Tensor& logits, bool want_sum) {
  variable_list r = CategoricalFunction::apply(logits, want_sum);
  return {r[0], r[1], r[2], want_sum ? OptTensor(r[3]) : OptTensor()};
}

}  // namespace fastsac
