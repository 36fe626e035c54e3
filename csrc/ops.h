// Declarations shared by bindings.cpp, ops_cpu.cpp and ops_cuda.cu. The bindings validate every argument
// (shapes, dtypes, devices, contiguity) before calling an implementation, so implementations assume:
// mean/log_std/noise/logits 2-D (N, A) (the TD loss's logits 3-D (C, B, K)), contiguous, one dtype in {float32, float64, float16, bfloat16}, one
// device; scale/bias undefined-or-(A,) contiguous in the compute dtype; incoming gradients contiguous in the
// input dtype. Semantics: fastsac/ops/reference.py.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

// The dispatcher namespace of this build's ops (library.cpp): fastsac_ext<module name>, one per built module.
#define FASTSAC_PASTE_(a, b) a##b
#define FASTSAC_PASTE(a, b) FASTSAC_PASTE_(a, b)
#define FASTSAC_STR_(x) #x
#define FASTSAC_STR(x) FASTSAC_STR_(x)
#define FASTSAC_OP_NAMESPACE FASTSAC_PASTE(fastsac_ext, TORCH_EXTENSION_NAME)

namespace fastsac {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

// The bounds as the kernels take them: on, lo, 0.5 * (hi - lo).
struct BoundsArg {
  bool on = false;
  double lo = 0.0;
  double half_range = 0.0;
};

// (action, log_prob, lp_sum or nullopt)
std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd_cpu(const Tensor& mean, const Tensor& log_std,
                                                                const Tensor& noise, const OptTensor& scale,
                                                                const OptTensor& bias, BoundsArg bounds,
                                                                bool want_sum);
// (d_mean, d_log_std)
std::tuple<Tensor, Tensor> squashed_gaussian_bwd_cpu(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                     const Tensor& mean, const Tensor& log_std,
                                                     const Tensor& noise, const OptTensor& scale,
                                                     BoundsArg bounds);
// (probs, log_probs, entropy, entropy_sum or nullopt)
std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd_cpu(const Tensor& logits, bool want_sum);
Tensor categorical_bwd_cpu(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                           const Tensor& logits);
// The categorical TD loss: logits (C, B, K); target_probs (B, K), reward / not_done / entropy_term (B,) in the compute
// dtype. (loss (C, B) in the logits' dtype, m (B, K) the projected target in the compute dtype).
struct TdArgs {
  double gamma;
  double v_min;
  double v_max;
};
std::tuple<Tensor, Tensor> categorical_td_fwd_cpu(const Tensor& logits, const Tensor& target_probs,
                                                  const Tensor& reward, const Tensor& not_done,
                                                  const Tensor& entropy_term, TdArgs args);
Tensor categorical_td_bwd_cpu(const Tensor& grad_loss, const Tensor& logits, const Tensor& m);

// The validated entry points (bindings.cpp): check every argument, then run the implementation of its device.
// `op` is the entry point the caller called (what Python or the dispatcher sees: "squashed_gaussian_fwd",
// "squashed_gaussian_eager", "fastsac_ext_C::squashed_gaussian", ...); every error message starts with it and names
// the argument at fault.
std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd(const char* op, const Tensor& mean, const Tensor& log_std,
                                                            const Tensor& noise, const OptTensor& scale,
                                                            const OptTensor& bias, std::optional<double> lo,
                                                            std::optional<double> hi, bool want_sum);
std::tuple<Tensor, Tensor> squashed_gaussian_bwd(const char* op, const Tensor& grad_action,
                                                 const Tensor& grad_log_prob, const Tensor& mean,
                                                 const Tensor& log_std, const Tensor& noise, const OptTensor& scale,
                                                 std::optional<double> lo, std::optional<double> hi);
std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd(const char* op, const Tensor& logits, bool want_sum);
Tensor categorical_bwd(const char* op, const Tensor& grad_probs, const Tensor& grad_log_probs,
                       const Tensor& grad_entropy, const Tensor& logits);
std::tuple<Tensor, Tensor> categorical_td_fwd(const char* op, const Tensor& logits, const Tensor& target_probs,
                                              const Tensor& reward, const Tensor& not_done,
                                              const Tensor& entropy_term, double gamma, double v_min, double v_max);
Tensor categorical_td_bwd(const char* op, const Tensor& grad_loss, const Tensor& logits, const Tensor& m);
// The alpha loss's target as the dispatcher ops take it (library.cpp): None, or a 0-dim tensor in the compute dtype
// of `ref` (the main input) on its device, as fastsac/ops/_validate.py's target_entropy makes it and the ops' fake
// functions assume.
void check_target(const char* op, const OptTensor& target, const Tensor& ref);
// The eager entry points for CPU tensors (autograd.cpp): the forwards, as autograd nodes whose backward is the
// primitives' when grad is true; with a target, the last output is the alpha loss's gap
// (mean(log_prob) + target, mean(entropy) - target), else None.
std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_eager(const Tensor& mean, const Tensor& log_std,
                                                              const Tensor& noise, const OptTensor& scale,
                                                              const OptTensor& bias, std::optional<double> lo,
                                                              std::optional<double> hi, std::optional<double> target,
                                                              bool grad);
std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_eager(const Tensor& logits, std::optional<double> target,
                                                                bool grad);
// The loss (C, B); with grad, an autograd node (saving logits and the projected target) whose backward is
// categorical_td_bwd's.
Tensor categorical_td_eager(const Tensor& logits, const Tensor& target_probs, const Tensor& reward,
                            const Tensor& not_done, const Tensor& entropy_term, double gamma, double v_min,
                            double v_max, bool grad);

#ifdef FASTSAC_WITH_CUDA
std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd_cuda(const Tensor& mean, const Tensor& log_std,
                                                                 const Tensor& noise, const OptTensor& scale,
                                                                 const OptTensor& bias, BoundsArg bounds,
                                                                 bool want_sum);
std::tuple<Tensor, Tensor> squashed_gaussian_bwd_cuda(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                      const Tensor& mean, const Tensor& log_std,
                                                      const Tensor& noise, const OptTensor& scale,
                                                      BoundsArg bounds);
std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd_cuda(const Tensor& logits, bool want_sum);
Tensor categorical_bwd_cuda(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                            const Tensor& logits);
std::tuple<Tensor, Tensor> categorical_td_fwd_cuda(const Tensor& logits, const Tensor& target_probs,
                                                   const Tensor& reward, const Tensor& not_done,
                                                   const Tensor& entropy_term, TdArgs args);
Tensor categorical_td_bwd_cuda(const Tensor& grad_loss, const Tensor& logits, const Tensor& m);
#endif

}  // namespace fastsac
