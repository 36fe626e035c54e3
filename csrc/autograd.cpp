// The eager entry points of the ops for CPU tensors (what fastsac/ops/squashed_gaussian.py and categorical.py
// call outside torch.compile): the forward alone, or, when a gradient is wanted, a C++ autograd node over the
// validated entry points of bindings.cpp; with a target, the alpha loss's gap too.
// The node and its backward live in C++, so an eager call costs one pybind call and the backward no Python at all
// (a Python torch.autograd.Function costs ~10-20 us a call on a CPU, the size of a whole batch-1 op).
// Semantics: fastsac/ops/reference.py; the backward is the closed form every backend implements. Gradients reach
// mean and log_std (the squashed Gaussian) and the logits (the categorical) only; an output's unused gradient
// arrives undefined and counts as zero; the want_sum total is not differentiable.
#include <ATen/Dispatch.h>
#include <torch/autograd.h>

#include "ops.h"

namespace fastsac {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The entry points' names in the messages of the argument checks (bindings.cpp).
constexpr const char* kSgEager = "squashed_gaussian_eager";
constexpr const char* kSgEagerBackward = "squashed_gaussian_eager (backward)";
constexpr const char* kCatEager = "categorical_eager";
constexpr const char* kCatEagerBackward = "categorical_eager (backward)";
constexpr const char* kTdEager = "categorical_td_eager";
constexpr const char* kTdEagerBackward = "categorical_td_eager (backward)";

// An incoming gradient as the primitives take it: real and contiguous (a sum's backward hands over a stride-0
// expanded tensor; an unused output's gradient is undefined).
Tensor incoming(const Tensor& grad, const Tensor& like, at::IntArrayRef shape) {
  return grad.defined() ? grad.contiguous() : at::zeros(shape, like.options());
}

struct SquashedGaussianFunction : public torch::autograd::Function<SquashedGaussianFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& mean, const Tensor& log_std, const Tensor& noise,
                               const OptTensor& scale, const OptTensor& bias, std::optional<double> lo,
                               std::optional<double> hi, bool want_sum) {
    auto [action, log_prob, lp_sum] =
        squashed_gaussian_fwd(kSgEager, mean, log_std, noise, scale, bias, lo, hi, want_sum);
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
        kSgEagerBackward, incoming(grads[0], mean, mean.sizes()), incoming(grads[1], mean, {mean.size(0)}), mean,
        saved[1], saved[2], scale, lo.isNone() ? std::nullopt : std::optional<double>(lo.toDouble()),
        hi.isNone() ? std::nullopt : std::optional<double>(hi.toDouble()));
    out[0] = d_mean;
    out[1] = d_log_std;
    return out;
  }
};

struct CategoricalFunction : public torch::autograd::Function<CategoricalFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, bool want_sum) {
    auto [probs, log_probs, entropy, entropy_sum] = categorical_fwd(kCatEager, logits, want_sum);
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
    out[0] = categorical_bwd(kCatEagerBackward, incoming(grads[0], logits, logits.sizes()),
                             incoming(grads[1], logits, logits.sizes()), incoming(grads[2], logits, {logits.size(0)}),
                             logits);
    return out;
  }
};

// The TD loss: the forward keeps the logits and the projected target m (B, K); the backward is closed-form.
struct CategoricalTdFunction : public torch::autograd::Function<CategoricalTdFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& logits, const Tensor& target_probs,
                               const Tensor& reward, const Tensor& not_done, const Tensor& entropy_term, double gamma,
                               double v_min, double v_max) {
    auto [loss, m] = categorical_td_fwd(kTdEager, logits, target_probs, reward, not_done, entropy_term, gamma, v_min,
                                        v_max);
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({logits, m});
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(8);  // logits, then no gradient for the target side and the three numbers
    if (!grads[0].defined()) return out;
    const variable_list saved = ctx->get_saved_variables();
    out[0] = categorical_td_bwd(kTdEagerBackward, grads[0].contiguous(), saved[0], saved[1]);
    return out;
  }
};

// The alpha loss's gap from the forward's total, as the custom ops form it in torch: total / N + sign * target, in
// the compute dtype (float32 arithmetic for float32, the same operations in the same order, so the same bits).
Tensor gap_of(const Tensor& total, int64_t rows, double target, double sign) {
  Tensor gap = at::empty({}, total.options());
  AT_DISPATCH_FLOATING_TYPES(total.scalar_type(), "fastsac_gap", [&] {
    const scalar_t t = static_cast<scalar_t>(target);  // rounded to the compute dtype first, as the custom ops do
    const scalar_t mean = *total.data_ptr<scalar_t>() / static_cast<scalar_t>(rows);
    *gap.data_ptr<scalar_t>() = sign > 0 ? mean + t : mean - t;
  });
  return gap;
}

// The main input of an eager entry point: a CPU tensor (the others are checked against it by the entry points of
// bindings.cpp, which name the eager entry point in their messages too).
void check_cpu(const char* op, const char* name, const Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.is_cpu(), op, ": ", name, " must be a CPU tensor (the eager entry points take CPU tensors), got ",
              t.device());
}

}  // namespace

Tensor categorical_td_eager(const Tensor& logits, const Tensor& target_probs, const Tensor& reward,
                            const Tensor& not_done, const Tensor& entropy_term, double gamma, double v_min,
                            double v_max, bool grad) {
  check_cpu(kTdEager, "logits", logits);
  if (grad) {
    return CategoricalTdFunction::apply(logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max)[0];
  }
  return std::get<0>(categorical_td_fwd(kTdEager, logits, target_probs, reward, not_done, entropy_term, gamma, v_min,
                                        v_max));
}

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_eager(const Tensor& mean, const Tensor& log_std,
                                                              const Tensor& noise, const OptTensor& scale,
                                                              const OptTensor& bias, std::optional<double> lo,
                                                              std::optional<double> hi, std::optional<double> target,
                                                              bool grad) {
  check_cpu(kSgEager, "mean", mean);
  const bool want_sum = target.has_value();
  Tensor action, log_prob, total;
  if (grad) {
    variable_list r = SquashedGaussianFunction::apply(mean, log_std, noise, scale, bias, lo, hi, want_sum);
    action = r[0], log_prob = r[1], total = r[2];
  } else {
    auto [a, lp, sum] = squashed_gaussian_fwd(kSgEager, mean, log_std, noise, scale, bias, lo, hi, want_sum);
    action = a, log_prob = lp, total = want_sum ? *sum : Tensor();
  }
  if (!want_sum) return {action, log_prob, std::nullopt};
  return {action, log_prob, gap_of(total, mean.size(0), *target, +1.0)};
}

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_eager(const Tensor& logits, std::optional<double> target,
                                                                bool grad) {
  check_cpu(kCatEager, "logits", logits);
  const bool want_sum = target.has_value();
  Tensor probs, log_probs, entropy, total;
  if (grad) {
    variable_list r = CategoricalFunction::apply(logits, want_sum);
    probs = r[0], log_probs = r[1], entropy = r[2], total = r[3];
  } else {
    auto [p, lp, h, sum] = categorical_fwd(kCatEager, logits, want_sum);
    probs = p, log_probs = lp, entropy = h, total = want_sum ? *sum : Tensor();
  }
  if (!want_sum) return {probs, log_probs, entropy, std::nullopt};
  return {probs, log_probs, entropy, gap_of(total, logits.size(0), *target, -1.0)};
}

}  // namespace fastsac
