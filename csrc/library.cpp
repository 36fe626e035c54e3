// The ops and their backwards registered with torch's dispatcher (TORCH_LIBRARY), for code that calls them
// through torch.ops: the compiled path of fastsac/ops/squashed_gaussian.py and categorical.py when the backend is
// this extension. A call goes from the dispatcher straight to C++, where the Python custom ops of those files cost
// ~30-60 us a call on a CPU in their dispatch alone (measured), more than the kernel at batch 256.
//
// Each build gets its own namespace, fastsac_ext<module name> (fastsac_ext_C for fastsac._C; FASTSAC_OP_NAMESPACE
// in ops.h), exposed as the module's `op_namespace`: the installed module and a JIT-built one can be loaded in one
// process, and a namespace can be defined only once. The fake (shape) functions and the autograd formulas are
// registered from Python as the module loads (fastsac.ops.extension.register_dispatcher_op, called by
// fastsac/ops/squashed_gaussian.py and categorical.py); the backward is its own op.
//
// Semantics: fastsac/ops/reference.py. With a target the last output is the alpha loss's gap, formed as the Python
// custom ops form it (mean(log_prob) + target, mean(entropy) - target; the same ATen arithmetic, the same bits),
// else an empty tensor. Arguments are validated by the entry points of bindings.cpp (the target by check_target),
// whose messages name the op (fastsac_ext_C::squashed_gaussian, ...) and the argument; CPU and CUDA tensors go to
// the implementation of their device there.
#include <torch/library.h>

#include "ops.h"

namespace fastsac {
namespace {

// The ops' names in the messages of the argument checks (bindings.cpp): torch.ops.<namespace>.<op>.
#define FASTSAC_OP_NAME(op) FASTSAC_STR(FASTSAC_OP_NAMESPACE) "::" op
constexpr const char* kSg = FASTSAC_OP_NAME("squashed_gaussian");
constexpr const char* kSgBackward = FASTSAC_OP_NAME("squashed_gaussian_backward");
constexpr const char* kCat = FASTSAC_OP_NAME("categorical");
constexpr const char* kCatBackward = FASTSAC_OP_NAME("categorical_backward");
constexpr const char* kTd = FASTSAC_OP_NAME("categorical_td");
constexpr const char* kTdBackward = FASTSAC_OP_NAME("categorical_td_backward");
#undef FASTSAC_OP_NAME

std::tuple<Tensor, Tensor, Tensor> squashed_gaussian_op(const Tensor& mean, const Tensor& log_std,
                                                        const Tensor& noise, const OptTensor& scale,
                                                        const OptTensor& bias, std::optional<double> lo,
                                                        std::optional<double> hi, const OptTensor& target) {
  const bool want_gap = target.has_value();
  auto [action, log_prob, lp_sum] = squashed_gaussian_fwd(kSg, mean, log_std, noise, scale, bias, lo, hi, want_gap);
  check_target(kSg, target, mean);
  Tensor gap = want_gap ? lp_sum->div(mean.size(0)).add(*target) : mean.new_empty({0});
  return {action, log_prob, gap};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> categorical_op(const Tensor& logits, const OptTensor& target) {
  const bool want_gap = target.has_value();
  auto [probs, log_probs, entropy, entropy_sum] = categorical_fwd(kCat, logits, want_gap);
  check_target(kCat, target, logits);
  Tensor gap = want_gap ? entropy_sum->div(logits.size(0)).sub(*target) : logits.new_empty({0});
  return {probs, log_probs, entropy, gap};
}

std::tuple<Tensor, Tensor> squashed_gaussian_backward_op(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                         const Tensor& mean, const Tensor& log_std,
                                                         const Tensor& noise, const OptTensor& scale,
                                                         std::optional<double> lo, std::optional<double> hi) {
  return squashed_gaussian_bwd(kSgBackward, grad_action, grad_log_prob, mean, log_std, noise, scale, lo, hi);
}

Tensor categorical_backward_op(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                               const Tensor& logits) {
  return categorical_bwd(kCatBackward, grad_probs, grad_log_probs, grad_entropy, logits);
}

std::tuple<Tensor, Tensor> categorical_td_op(const Tensor& logits, const Tensor& target_probs, const Tensor& reward,
                                             const Tensor& not_done, const Tensor& entropy_term, double gamma,
                                             double v_min, double v_max) {
  return categorical_td_fwd(kTd, logits, target_probs, reward, not_done, entropy_term, gamma, v_min, v_max);
}

Tensor categorical_td_backward_op(const Tensor& grad_loss, const Tensor& logits, const Tensor& m) {
  return categorical_td_bwd(kTdBackward, grad_loss, logits, m);
}

}  // namespace
}  // namespace fastsac

TORCH_LIBRARY(FASTSAC_OP_NAMESPACE, m) {
  m.def("squashed_gaussian(Tensor mean, Tensor log_std, Tensor noise, Tensor? scale, Tensor? bias, float? lo, "
        "float? hi, Tensor? target) -> (Tensor, Tensor, Tensor)");
  m.def("squashed_gaussian_backward(Tensor grad_action, Tensor grad_log_prob, Tensor mean, Tensor log_std, "
        "Tensor noise, Tensor? scale, float? lo, float? hi) -> (Tensor, Tensor)");
  m.def("categorical(Tensor logits, Tensor? target) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("categorical_backward(Tensor grad_probs, Tensor grad_log_probs, Tensor grad_entropy, Tensor logits) -> "
        "Tensor");
  m.def("categorical_td(Tensor logits, Tensor target_probs, Tensor reward, Tensor not_done, Tensor entropy_term, "
        "float gamma, float v_min, float v_max) -> (Tensor, Tensor)");
  m.def("categorical_td_backward(Tensor grad_loss, Tensor logits, Tensor m) -> Tensor");
}

TORCH_LIBRARY_IMPL(FASTSAC_OP_NAMESPACE, CPU, m) {
  m.impl("squashed_gaussian", &fastsac::squashed_gaussian_op);
  m.impl("squashed_gaussian_backward", &fastsac::squashed_gaussian_backward_op);
  m.impl("categorical", &fastsac::categorical_op);
  m.impl("categorical_backward", &fastsac::categorical_backward_op);
  m.impl("categorical_td", &fastsac::categorical_td_op);
  m.impl("categorical_td_backward", &fastsac::categorical_td_backward_op);
}

#ifdef FASTSAC_WITH_CUDA
TORCH_LIBRARY_IMPL(FASTSAC_OP_NAMESPACE, CUDA, m) {
  m.impl("squashed_gaussian", &fastsac::squashed_gaussian_op);
  m.impl("squashed_gaussian_backward", &fastsac::squashed_gaussian_backward_op);
  m.impl("categorical", &fastsac::categorical_op);
  m.impl("categorical_backward", &fastsac::categorical_backward_op);
  m.impl("categorical_td", &fastsac::categorical_td_op);
  m.impl("categorical_td_backward", &fastsac::categorical_td_backward_op);
}
#endif
