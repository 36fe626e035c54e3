// pybind11 module fastsac._C (or the JIT-built CPU-only module, see fastsac/ops/extension.py): the four fused
// SAC primitives of fastsac/ops/reference.py with the same Python signatures, and the native update's entry point.
// Every tensor that comes in from Python is validated here (shape or element count, dtype, device, contiguity)
// with a message that names the entry point and the argument; the implementations in ops_cpu.cpp / ops_cuda.cu
// are chosen by the tensors' device.
#include <torch/extension.h>

#include <cmath>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "ops.h"
#include "crossq_update.h"
#include "discrete_sac_update.h"
#include "sac_update.h"

namespace fastsac {
namespace {

#ifdef FASTSAC_WITH_CUDA
constexpr bool kWithCuda = true;
#else
constexpr bool kWithCuda = false;
#endif

enum class Impl { kCpu, kCuda };

bool is_supported_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

at::ScalarType compute_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

void check_contiguous(const char* op, const char* name, const Tensor& t) {
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (got strides ", t.strides(), " for shape ",
              t.sizes(), "); call .contiguous() first");
}

// The main input: 2-D (N, A), supported floating dtype, contiguous, on cpu or cuda.
Impl check_main(const char* op, const char* name, const Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.dim() == 2, op, ": ", name, " must be 2-D (N, A), got shape ", t.sizes());
  TORCH_CHECK(is_supported_dtype(t.scalar_type()), op, ": ", name,
              " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
  check_contiguous(op, name, t);
  if (t.is_cpu()) return Impl::kCpu;
  if (t.is_cuda()) {
    TORCH_CHECK(kWithCuda, op, ": ", name, " is a CUDA tensor but this fastsac C++ extension was built without CUDA "
                "(CPU only); use the 'triton' or 'torch' backend, or reinstall fastsac with a CUDA toolkit and a "
                "CUDA build of torch (pip install . --no-build-isolation)");
    return Impl::kCuda;
  }
  TORCH_CHECK(false, op, ": ", name, " is on device ", t.device(), "; the C++ extension supports cpu and cuda");
  return Impl::kCpu;  // unreachable
}

// Another tensor of the given shape, the dtype and device of `ref`, contiguous.
void check_like(const char* op, const char* name, const Tensor& t, const char* ref_name, const Tensor& ref,
                at::IntArrayRef shape) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, " (from ", ref_name, "), got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", name, " must have the dtype of ", ref_name, " (",
              ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on the device of ", ref_name, " (",
              ref.device(), "), got ", t.device());
  check_contiguous(op, name, t);
}

// scale / bias: None or 1-D (A,) in the compute dtype, on the device of `ref`, contiguous.
void check_affine(const char* op, const char* name, const OptTensor& t, const Tensor& ref) {
  if (!t.has_value()) return;
  TORCH_CHECK(t->defined(), op, ": ", name, " is an undefined tensor (pass None instead)");
  const int64_t A = ref.size(1);
  TORCH_CHECK(t->dim() == 1 && t->size(0) == A, op, ": ", name, " must be None or 1-D of shape (", A,
              ",) (the action dimension of mean), got shape ", t->sizes());
  const at::ScalarType cd = compute_type(ref.scalar_type());
  TORCH_CHECK(t->scalar_type() == cd, op, ": ", name, " must have the compute dtype ", cd, " for ",
              ref.scalar_type(), " inputs, got ", t->scalar_type());
  TORCH_CHECK(t->device() == ref.device(), op, ": ", name, " must be on the device of mean (", ref.device(),
              "), got ", t->device());
  check_contiguous(op, name, *t);
}

// A tensor of the given shape in the compute dtype of `ref` (the main input), on its device, contiguous.
void check_compute(const char* op, const char* name, const Tensor& t, const char* ref_name, const Tensor& ref,
                   at::IntArrayRef shape) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, " (from ", ref_name, "), got ",
              t.sizes());
  const at::ScalarType cd = compute_type(ref.scalar_type());
  TORCH_CHECK(t.scalar_type() == cd, op, ": ", name, " must have the compute dtype ", cd, " for ", ref.scalar_type(),
              " ", ref_name, ", got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on the device of ", ref_name, " (", ref.device(),
              "), got ", t.device());
  check_contiguous(op, name, t);
}

// The TD loss's logits: 3-D (C, B, K) with K >= 2, then as check_main.
Impl check_td_logits(const char* op, const Tensor& logits) {
  TORCH_CHECK(logits.defined(), op, ": logits is an undefined tensor");
  TORCH_CHECK(logits.dim() == 3, op, ": logits must be 3-D (C, B, K): members, samples, atoms; got shape ",
              logits.sizes());
  TORCH_CHECK(logits.size(2) >= 2, op, ": logits must have K >= 2 atoms (the support's size), got shape ",
              logits.sizes());
  TORCH_CHECK(is_supported_dtype(logits.scalar_type()), op,
              ": logits must be float32, float64, float16 or bfloat16, got ", logits.scalar_type());
  check_contiguous(op, "logits", logits);
  if (logits.is_cpu()) return Impl::kCpu;
  TORCH_CHECK(logits.is_cuda(), op, ": logits is on device ", logits.device(),
              "; the C++ extension supports cpu and cuda");
  TORCH_CHECK(kWithCuda, op, ": logits is a CUDA tensor but this fastsac C++ extension was built without CUDA "
              "(CPU only); use the 'triton' or 'torch' backend");
  return Impl::kCuda;
}

BoundsArg check_bounds(const char* op, std::optional<double> lo, std::optional<double> hi) {
  TORCH_CHECK(lo.has_value() == hi.has_value(), op, ": lo and hi must both be None or both be floats, got lo=",
              lo.has_value() ? std::to_string(*lo) : "None", " hi=", hi.has_value() ? std::to_string(*hi) : "None");
  BoundsArg b;
  if (!lo.has_value()) return b;
  TORCH_CHECK(std::isfinite(*lo) && std::isfinite(*hi) && *lo < *hi, op,
              ": log-std bounds need finite lo < hi, got lo=", *lo, " hi=", *hi);
  b.on = true;
  b.lo = *lo;
  b.half_range = 0.5 * (*hi - *lo);
  return b;
}

}  // namespace

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd(const char* op, const Tensor& mean, const Tensor& log_std,
                                                            const Tensor& noise, const OptTensor& scale,
                                                            const OptTensor& bias, std::optional<double> lo,
                                                            std::optional<double> hi, bool want_sum) {
  const Impl impl = check_main(op, "mean", mean);
  check_like(op, "log_std", log_std, "mean", mean, mean.sizes());
  check_like(op, "noise", noise, "mean", mean, mean.sizes());
  check_affine(op, "scale", scale, mean);
  check_affine(op, "bias", bias, mean);
  const BoundsArg b = check_bounds(op, lo, hi);
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return squashed_gaussian_fwd_cuda(mean, log_std, noise, scale, bias, b, want_sum);
#endif
  (void)impl;
  return squashed_gaussian_fwd_cpu(mean, log_std, noise, scale, bias, b, want_sum);
}

std::tuple<Tensor, Tensor> squashed_gaussian_bwd(const char* op, const Tensor& grad_action,
                                                 const Tensor& grad_log_prob, const Tensor& mean,
                                                 const Tensor& log_std, const Tensor& noise, const OptTensor& scale,
                                                 std::optional<double> lo, std::optional<double> hi) {
  const Impl impl = check_main(op, "mean", mean);
  check_like(op, "log_std", log_std, "mean", mean, mean.sizes());
  check_like(op, "noise", noise, "mean", mean, mean.sizes());
  check_like(op, "grad_action", grad_action, "mean", mean, mean.sizes());
  check_like(op, "grad_log_prob", grad_log_prob, "mean", mean, {mean.size(0)});
  check_affine(op, "scale", scale, mean);
  const BoundsArg b = check_bounds(op, lo, hi);
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) {
    return squashed_gaussian_bwd_cuda(grad_action, grad_log_prob, mean, log_std, noise, scale, b);
  }
#endif
  (void)impl;
  return squashed_gaussian_bwd_cpu(grad_action, grad_log_prob, mean, log_std, noise, scale, b);
}

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd(const char* op, const Tensor& logits, bool want_sum) {
  const Impl impl = check_main(op, "logits", logits);
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return categorical_fwd_cuda(logits, want_sum);
#endif
  (void)impl;
  return categorical_fwd_cpu(logits, want_sum);
}

Tensor categorical_bwd(const char* op, const Tensor& grad_probs, const Tensor& grad_log_probs,
                       const Tensor& grad_entropy, const Tensor& logits) {
  const Impl impl = check_main(op, "logits", logits);
  check_like(op, "grad_probs", grad_probs, "logits", logits, logits.sizes());
  check_like(op, "grad_log_probs", grad_log_probs, "logits", logits, logits.sizes());
  check_like(op, "grad_entropy", grad_entropy, "logits", logits, {logits.size(0)});
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return categorical_bwd_cuda(grad_probs, grad_log_probs, grad_entropy, logits);
#endif
  (void)impl;
  return categorical_bwd_cpu(grad_probs, grad_log_probs, grad_entropy, logits);
}

std::tuple<Tensor, Tensor> categorical_td_fwd(const char* op, const Tensor& logits, const Tensor& target_probs,
                                              const Tensor& reward, const Tensor& not_done,
                                              const Tensor& entropy_term, double gamma, double v_min, double v_max) {
  const Impl impl = check_td_logits(op, logits);
  const int64_t B = logits.size(1), K = logits.size(2);
  check_compute(op, "target_probs", target_probs, "logits", logits, {B, K});
  check_compute(op, "reward", reward, "logits", logits, {B});
  check_compute(op, "not_done", not_done, "logits", logits, {B});
  check_compute(op, "entropy_term", entropy_term, "logits", logits, {B});
  TORCH_CHECK(std::isfinite(gamma), op, ": gamma must be finite, got ", gamma);
  TORCH_CHECK(std::isfinite(v_min) && std::isfinite(v_max) && v_min < v_max, op,
              ": the support needs finite v_min < v_max, got v_min=", v_min, " v_max=", v_max);
  const TdArgs args{gamma, v_min, v_max};
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return categorical_td_fwd_cuda(logits, target_probs, reward, not_done, entropy_term, args);
#endif
  (void)impl;
  return categorical_td_fwd_cpu(logits, target_probs, reward, not_done, entropy_term, args);
}

Tensor categorical_td_bwd(const char* op, const Tensor& grad_loss, const Tensor& logits, const Tensor& m) {
  const Impl impl = check_td_logits(op, logits);
  check_like(op, "grad_loss", grad_loss, "logits", logits, {logits.size(0), logits.size(1)});
  check_compute(op, "m", m, "logits", logits, {logits.size(1), logits.size(2)});
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return categorical_td_bwd_cuda(grad_loss, logits, m);
#endif
  (void)impl;
  return categorical_td_bwd_cpu(grad_loss, logits, m);
}

void check_target(const char* op, const OptTensor& target, const Tensor& ref) {
  if (!target.has_value()) return;
  TORCH_CHECK(target->defined(), op, ": target is an undefined tensor (pass None instead)");
  const at::ScalarType cd = compute_type(ref.scalar_type());
  TORCH_CHECK(target->dim() == 0, op, ": target must be None or a 0-dim tensor, got shape ", target->sizes());
  TORCH_CHECK(target->scalar_type() == cd, op, ": target must have the compute dtype ", cd, " for ",
              ref.scalar_type(), " inputs, got ", target->scalar_type());
  TORCH_CHECK(target->device() == ref.device(), op, ": target must be on the device of the inputs (", ref.device(),
              "), got ", target->device());
}

// ------------------------------------------------------------------------------------------------ native updates
namespace {

constexpr const char* kSac = "sac_update_cpu";
constexpr const char* kCrossQ = "crossq_update_cpu";
constexpr const char* kDiscrete = "discrete_sac_update_cpu";

}  // namespace

namespace {

// A ForeachAdam's state from Python: (exp_avg, exp_avg_sq, [step_count, beta_pows, betas, step_size,
// bias_correction2_sqrt], [lr, beta1, beta2, eps]) (the native update, fastsac/agents/sac_native.py, builds it).
using AdamTuple = std::tuple<std::vector<Tensor>, std::vector<Tensor>, std::vector<Tensor>, std::vector<double>>;

AdamRef adam_ref(const char* name, const AdamTuple& t, const char* op = kSac) {
  const auto& [m, v, state, hyper] = t;
  TORCH_CHECK(state.size() == 5 && hyper.size() == 4, op, ": ", name, " must be (exp_avg, exp_avg_sq, [step_count, "
              "beta_pows, betas, step_size, bias_correction2_sqrt], [lr, beta1, beta2, eps]), got ", state.size(),
              " state tensors and ", hyper.size(), " numbers");
  return AdamRef{m, v, state[0], state[1], state[2], state[3], state[4], hyper[0], hyper[1], hyper[2], hyper[3]};
}

// The entry point of the native update (fastsac/agents/sac_native.py calls it; its argument list is that call's).
//
// Thread safety. The update writes in place, through raw pointers: every tensor of actor, critic and target_critic;
// the optimizers' exp_avg, exp_avg_sq, step_count, beta_pows, step_size and bias_correction2_sqrt; log_alpha (with
// alpha_opt); metric_sums. It reads the batch, act_obs, act_noise, target_entropy and the optimizers' betas. It
// releases the GIL for the whole update (from check_sac_update on), so other Python threads run meanwhile. Two calls
// on the same learner's tensors at once, or a thread that reads or writes them during a call (acting, a checkpoint,
// metrics(), another update), race: torn parameters, lost Adam steps, wrong sums, and no error. Callers must
// serialise every use of one learner's tensors around this call; calls on distinct learners may overlap (each uses
// ATen's intra-op thread pool). The raw writes do not bump autograd's version counters: an autograd graph that
// saved one of these tensors before the call does not see that it changed.
//
// Errors: every argument is checked (check_sac_update) before anything is written, so a call that raises leaves
// every tensor unchanged.
std::optional<Tensor> sac_update_entry(std::vector<Tensor> actor, std::vector<Tensor> critic,
                                       std::vector<Tensor> target_critic, Tensor log_alpha, Tensor target_entropy,
                                       Tensor metric_sums, const AdamTuple& actor_opt, const AdamTuple& critic_opt,
                                       const std::optional<AdamTuple>& alpha_opt, std::vector<Tensor> batch,
                                       bool update_actor, double gamma, double tau, double log_std_lo,
                                       double log_std_hi, std::optional<Tensor> act_obs,
                                       std::optional<Tensor> act_noise) {
  TORCH_CHECK(batch.size() == 6, kSac, ": batch must be [obs, action, reward, next_obs, terminated, noise], got ",
              batch.size(), " tensors");
  const SacNets nets{std::move(actor), std::move(critic), std::move(target_critic), log_alpha, target_entropy,
                     metric_sums};
  const SacBatch b{batch[0], batch[1], batch[2], batch[3], batch[4], batch[5]};
  std::optional<AdamRef> alpha;
  if (alpha_opt.has_value()) alpha = adam_ref("alpha_opt", *alpha_opt);
  const AdamRef a = adam_ref("actor_opt", actor_opt), c = adam_ref("critic_opt", critic_opt);
  pybind11::gil_scoped_release no_gil;
  return sac_update_cpu(nets, a, c, alpha, b, {gamma, tau, log_std_lo, log_std_hi, update_actor}, act_obs, act_noise);
}

// The entry point of the native CrossQ update (fastsac/agents/crossq_native.py calls it). Thread safety and errors as
// sac_update_entry's: it writes every tensor of actor, critic, actor_stats and critic_stats, the optimizers' state,
// log_alpha (with alpha_opt) and metric_sums in place, with the GIL released; callers serialise every use of one
// learner's tensors around it; every argument is checked before anything is written.
std::optional<Tensor> crossq_update_entry(std::vector<Tensor> actor, std::vector<Tensor> actor_stats,
                                          std::vector<Tensor> critic, std::vector<Tensor> critic_stats,
                                          Tensor log_alpha, Tensor target_entropy, Tensor metric_sums,
                                          const AdamTuple& actor_opt, const AdamTuple& critic_opt,
                                          const std::optional<AdamTuple>& alpha_opt, std::vector<Tensor> batch,
                                          bool update_actor, double gamma, double log_std_lo, double log_std_hi,
                                          std::vector<double> brn, std::optional<Tensor> act_obs,
                                          std::optional<Tensor> act_noise) {
  TORCH_CHECK(batch.size() == 6, kCrossQ, ": batch must be [obs, action, reward, next_obs, terminated, noise], got ",
              batch.size(), " tensors");
  TORCH_CHECK(brn.size() == 5, kCrossQ, ": brn must be [momentum, eps, r_max, d_max, warmup_steps], got ", brn.size(),
              " numbers");
  TORCH_CHECK(std::isfinite(brn[4]) && brn[4] >= 0.0 && brn[4] < 9.0e18, kCrossQ,
              ": brn warmup_steps must be a count >= 0, got ", brn[4]);
  const CrossQNets nets{std::move(actor), std::move(actor_stats), std::move(critic), std::move(critic_stats),
                        log_alpha, target_entropy, metric_sums};
  const SacBatch b{batch[0], batch[1], batch[2], batch[3], batch[4], batch[5]};
  std::optional<AdamRef> alpha;
  if (alpha_opt.has_value()) alpha = adam_ref("alpha_opt", *alpha_opt, kCrossQ);
  const AdamRef a = adam_ref("actor_opt", actor_opt, kCrossQ), c = adam_ref("critic_opt", critic_opt, kCrossQ);
  const BrnConsts k{brn[0], brn[1], brn[2], brn[3], static_cast<int64_t>(brn[4])};
  pybind11::gil_scoped_release no_gil;
  return crossq_update_cpu(nets, a, c, alpha, b, {gamma, log_std_lo, log_std_hi, update_actor}, k, act_obs,
                           act_noise);
}

// The entry point of the native discrete-SAC update (fastsac/agents/discrete_sac_native.py calls it). Thread safety
// and errors as sac_update_entry's: it writes every tensor of actor, critic and target_critic, the optimizers' state,
// log_alpha (with alpha_opt) and metric_sums in place, with the GIL released; callers serialise every use of one
// learner's tensors around it; every argument is checked before anything is written.
void discrete_sac_update_entry(std::vector<Tensor> actor, std::vector<Tensor> critic,
                               std::vector<Tensor> target_critic, Tensor log_alpha, Tensor target_entropy,
                               Tensor metric_sums, const AdamTuple& actor_opt, const AdamTuple& critic_opt,
                               const std::optional<AdamTuple>& alpha_opt, std::vector<Tensor> batch,
                               bool update_actor, double gamma, double tau) {
  TORCH_CHECK(batch.size() == 5, kDiscrete, ": batch must be [obs, action, reward, next_obs, terminated], got ",
              batch.size(), " tensors");
  const DiscreteSacNets nets{std::move(actor), std::move(critic), std::move(target_critic), log_alpha,
                             target_entropy, metric_sums};
  const DiscreteSacBatch b{batch[0], batch[1], batch[2], batch[3], batch[4]};
  std::optional<AdamRef> alpha;
  if (alpha_opt.has_value()) alpha = adam_ref("alpha_opt", *alpha_opt, kDiscrete);
  const AdamRef a = adam_ref("actor_opt", actor_opt, kDiscrete), c = adam_ref("critic_opt", critic_opt, kDiscrete);
  pybind11::gil_scoped_release no_gil;
  discrete_sac_update_cpu(nets, a, c, alpha, b, {gamma, tau, update_actor});
}

}  // namespace
}  // namespace fastsac

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  using fastsac::OptTensor;
  using fastsac::Tensor;
  using Bound = std::optional<double>;
  m.doc() = "fastsac fused SAC primitives (C++/CUDA); semantics in fastsac/ops/reference.py";
  m.attr("with_cuda") = py::bool_(fastsac::kWithCuda);
  m.attr("op_namespace") = FASTSAC_STR(FASTSAC_OP_NAMESPACE);  // torch.ops.<this>: the ops of library.cpp
#if defined(CPU_CAPABILITY_AVX2)
  m.attr("cpu_vectorized") = py::bool_(true);  // built with the AVX2 flags (fastsac/ops/cpu_build_flags.py)
#else
  m.attr("cpu_vectorized") = py::bool_(false);
#endif
  m.def(
      "squashed_gaussian_fwd",
      [](const Tensor& mean, const Tensor& log_std, const Tensor& noise, const OptTensor& scale, const OptTensor& bias,
         Bound lo, Bound hi, bool want_sum) {
        return fastsac::squashed_gaussian_fwd("squashed_gaussian_fwd", mean, log_std, noise, scale, bias, lo, hi,
                                              want_sum);
      },
      py::arg("mean"), py::arg("log_std"), py::arg("noise"), py::arg("scale"), py::arg("bias"), py::arg("lo"),
      py::arg("hi"), py::arg("want_sum"), py::call_guard<py::gil_scoped_release>(),
      "(action, log_prob, lp_sum or None) of the tanh-squashed Gaussian");
  m.def(
      "squashed_gaussian_bwd",
      [](const Tensor& grad_action, const Tensor& grad_log_prob, const Tensor& mean, const Tensor& log_std,
         const Tensor& noise, const OptTensor& scale, Bound lo, Bound hi) {
        return fastsac::squashed_gaussian_bwd("squashed_gaussian_bwd", grad_action, grad_log_prob, mean, log_std,
                                              noise, scale, lo, hi);
      },
      py::arg("grad_action"), py::arg("grad_log_prob"), py::arg("mean"), py::arg("log_std"), py::arg("noise"),
      py::arg("scale"), py::arg("lo"), py::arg("hi"), py::call_guard<py::gil_scoped_release>(),
      "(d_mean, d_log_std) of the tanh-squashed Gaussian");
  m.def(
      "categorical_fwd",
      [](const Tensor& logits, bool want_sum) { return fastsac::categorical_fwd("categorical_fwd", logits, want_sum); },
      py::arg("logits"), py::arg("want_sum"), py::call_guard<py::gil_scoped_release>(),
      "(probs, log_probs, entropy, entropy_sum or None)");
  m.def(
      "categorical_bwd",
      [](const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy, const Tensor& logits) {
        return fastsac::categorical_bwd("categorical_bwd", grad_probs, grad_log_probs, grad_entropy, logits);
      },
      py::arg("grad_probs"), py::arg("grad_log_probs"), py::arg("grad_entropy"), py::arg("logits"),
      py::call_guard<py::gil_scoped_release>(), "d_logits");
  m.def("squashed_gaussian_eager", &fastsac::squashed_gaussian_eager, py::arg("mean"), py::arg("log_std"),
        py::arg("noise"), py::arg("scale"), py::arg("bias"), py::arg("lo"), py::arg("hi"), py::arg("target"),
        py::arg("grad"), py::call_guard<py::gil_scoped_release>(),
        "(action, log_prob, gap or None): the forward, an autograd node with the closed-form backward when grad");
  m.def("sac_update_cpu", &fastsac::sac_update_entry, py::arg("actor"), py::arg("critic"), py::arg("target_critic"),
        py::arg("log_alpha"), py::arg("target_entropy"), py::arg("metric_sums"), py::arg("actor_opt"),
        py::arg("critic_opt"), py::arg("alpha_opt"), py::arg("batch"), py::arg("update_actor"), py::arg("gamma"),
        py::arg("tau"), py::arg("log_std_lo"), py::arg("log_std_hi"), py::arg("act_obs"), py::arg("act_noise"),
        "one continuous-SAC update in place (csrc/sac_update_cpu.cpp); every argument is checked before anything is "
        "written; the next actions for act_obs when given. Not thread-safe on one learner's tensors: callers "
        "serialise (csrc/bindings.cpp, sac_update_entry)");
  m.def("crossq_update_cpu", &fastsac::crossq_update_entry, py::arg("actor"), py::arg("actor_stats"),
        py::arg("critic"), py::arg("critic_stats"), py::arg("log_alpha"), py::arg("target_entropy"),
        py::arg("metric_sums"), py::arg("actor_opt"), py::arg("critic_opt"), py::arg("alpha_opt"), py::arg("batch"),
        py::arg("update_actor"), py::arg("gamma"), py::arg("log_std_lo"), py::arg("log_std_hi"), py::arg("brn"),
        py::arg("act_obs"), py::arg("act_noise"),
        "one CrossQ update in place (csrc/crossq_update_cpu.cpp); every argument is checked before anything is "
        "written; the next actions for act_obs when given. Not thread-safe on one learner's tensors: callers "
        "serialise (csrc/bindings.cpp, crossq_update_entry)");
  m.def("discrete_sac_update_cpu", &fastsac::discrete_sac_update_entry, py::arg("actor"), py::arg("critic"),
        py::arg("target_critic"), py::arg("log_alpha"), py::arg("target_entropy"), py::arg("metric_sums"),
        py::arg("actor_opt"), py::arg("critic_opt"), py::arg("alpha_opt"), py::arg("batch"), py::arg("update_actor"),
        py::arg("gamma"), py::arg("tau"),
        "one discrete-SAC update in place (csrc/discrete_sac_update_cpu.cpp); every argument is checked before "
        "anything is written. Not thread-safe on one learner's tensors: callers serialise (csrc/bindings.cpp, "
        "discrete_sac_update_entry)");
  m.def(
      "categorical_td_fwd",
      [](const Tensor& logits, const Tensor& target_probs, const Tensor& reward, const Tensor& not_done,
         const Tensor& entropy_term, double gamma, double v_min, double v_max) {
        return fastsac::categorical_td_fwd("categorical_td_fwd", logits, target_probs, reward, not_done, entropy_term,
                                           gamma, v_min, v_max);
      },
      py::arg("logits"), py::arg("target_probs"), py::arg("reward"), py::arg("not_done"), py::arg("entropy_term"),
      py::arg("gamma"), py::arg("v_min"), py::arg("v_max"), py::call_guard<py::gil_scoped_release>(),
      "(loss (C, B), m (B, K)): the categorical TD loss and the projected target");
  m.def(
      "categorical_td_bwd",
      [](const Tensor& grad_loss, const Tensor& logits, const Tensor& m) {
        return fastsac::categorical_td_bwd("categorical_td_bwd", grad_loss, logits, m);
      },
      py::arg("grad_loss"), py::arg("logits"), py::arg("m"), py::call_guard<py::gil_scoped_release>(),
      "d_logits = grad_loss * (softmax(logits) * sum(m) - m)");
  m.def("categorical_td_eager", &fastsac::categorical_td_eager, py::arg("logits"), py::arg("target_probs"),
        py::arg("reward"), py::arg("not_done"), py::arg("entropy_term"), py::arg("gamma"), py::arg("v_min"),
        py::arg("v_max"), py::arg("grad"), py::call_guard<py::gil_scoped_release>(),
        "loss (C, B): the forward, an autograd node with the closed-form backward when grad");
  m.def("categorical_eager", &fastsac::categorical_eager, py::arg("logits"), py::arg("target"), py::arg("grad"),
        py::call_guard<py::gil_scoped_release>(),
        "(probs, log_probs, entropy, gap or None): the forward, an autograd node with its backward when grad");
}
