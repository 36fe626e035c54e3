// pybind11 module fastsac._C (or the JIT-built CPU-only module, see fastsac/_extension.py): the four fused
// SAC primitives of fastsac/ops/reference.py with the same Python signatures. Every argument is validated
// here (shape, dtype, device, contiguity) with a message that names the argument; the implementations in
// ops_cpu.cpp / ops_cuda.cu are chosen by the tensors' device.
#include <torch/extension.h>

#include <cmath>
#include <optional>
#include <string>

#include "ops.h"
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

std::tuple<Tensor, Tensor, OptTensor> squashed_gaussian_fwd(const Tensor& mean, const Tensor& log_std,
                                                            const Tensor& noise, const OptTensor& scale,
                                                            const OptTensor& bias, std::optional<double> lo,
                                                            std::optional<double> hi, bool want_sum) {
  const char* op = "squashed_gaussian_fwd";
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

std::tuple<Tensor, Tensor> squashed_gaussian_bwd(const Tensor& grad_action, const Tensor& grad_log_prob,
                                                 const Tensor& mean, const Tensor& log_std, const Tensor& noise,
                                                 const OptTensor& scale, std::optional<double> lo,
                                                 std::optional<double> hi) {
  const char* op = "squashed_gaussian_bwd";
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

std::tuple<Tensor, Tensor, Tensor, OptTensor> categorical_fwd(const Tensor& logits, bool want_sum) {
  const char* op = "categorical_fwd";
  const Impl impl = check_main(op, "logits", logits);
#ifdef FASTSAC_WITH_CUDA
  if (impl == Impl::kCuda) return categorical_fwd_cuda(logits, want_sum);
#endif
  (void)impl;
  return categorical_fwd_cpu(logits, want_sum);
}

Tensor categorical_bwd(const Tensor& grad_probs, const Tensor& grad_log_probs, const Tensor& grad_entropy,
                       const Tensor& logits) {
  const char* op = "categorical_bwd";
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

}  // namespace fastsac

namespace fastsac {
namespace {

// A ForeachAdam's state from Python: (exp_avg, exp_avg_sq, [step_count, beta_pows, betas, step_size,
// bias_correction2_sqrt], [lr, beta1, beta2, eps]) (fastsac/agents/native_update.py builds it).
using AdamTuple = std::tuple<std::vector<Tensor>, std::vector<Tensor>, std::vector<Tensor>, std::vector<double>>;

AdamRef adam_ref(const AdamTuple& t) {
  const auto& [m, v, state, hyper] = t;
  TORCH_CHECK(state.size() == 5 && hyper.size() == 4, "sac_update_cpu: an optimizer is (exp_avg, exp_avg_sq, 5 state "
              "tensors, [lr, beta1, beta2, eps])");
  return AdamRef{m, v, state[0], state[1], state[2], state[3], state[4], hyper[0], hyper[1], hyper[2], hyper[3]};
}

}  // namespace
}  // namespace fastsac

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.doc() = "fastsac fused SAC primitives (C++/CUDA); semantics in fastsac/ops/reference.py";
  m.attr("with_cuda") = py::bool_(fastsac::kWithCuda);
  m.attr("op_namespace") = FASTSAC_STR(FASTSAC_OP_NAMESPACE);  // torch.ops.<this>: the ops of library.cpp
#if defined(CPU_CAPABILITY_AVX2)
  m.attr("cpu_vectorized") = py::bool_(true);  // built with the AVX2 flags (fastsac/ops/cpu_build_flags.py)
#else
  m.attr("cpu_vectorized") = py::bool_(false);
#endif
  m.def("squashed_gaussian_fwd", &fastsac::squashed_gaussian_fwd, py::arg("mean"), py::arg("log_std"),
        py::arg("noise"), py::arg("scale"), py::arg("bias"), py::arg("lo"), py::arg("hi"), py::arg("want_sum"),
        py::call_guard<py::gil_scoped_release>(),
        "(action, log_prob, lp_sum or None) of the tanh-squashed Gaussian");
  m.def("squashed_gaussian_bwd", &fastsac::squashed_gaussian_bwd, py::arg("grad_action"), py::arg("grad_log_prob"),
        py::arg("mean"), py::arg("log_std"), py::arg("noise"), py::arg("scale"), py::arg("lo"), py::arg("hi"),
        py::call_guard<py::gil_scoped_release>(), "(d_mean, d_log_std) of the tanh-squashed Gaussian");
  m.def("categorical_fwd", &fastsac::categorical_fwd, py::arg("logits"), py::arg("want_sum"),
        py::call_guard<py::gil_scoped_release>(), "(probs, log_probs, entropy, entropy_sum or None)");
  m.def("categorical_bwd", &fastsac::categorical_bwd, py::arg("grad_probs"), py::arg("grad_log_probs"),
        py::arg("grad_entropy"), py::arg("logits"), py::call_guard<py::gil_scoped_release>(), "d_logits");
  m.def("squashed_gaussian_eager", &fastsac::squashed_gaussian_eager, py::arg("mean"), py::arg("log_std"),
        py::arg("noise"), py::arg("scale"), py::arg("bias"), py::arg("lo"), py::arg("hi"), py::arg("target"),
        py::arg("grad"), py::call_guard<py::gil_scoped_release>(),
        "(action, log_prob, gap or None): the forward, an autograd node with the closed-form backward when grad");
  using fastsac::AdamTuple;
  m.def(
      "sac_update_cpu",
      [](std::vector<at::Tensor> actor, std::vector<at::Tensor> critic, std::vector<at::Tensor> target_critic,
         at::Tensor log_alpha, at::Tensor target_entropy, at::Tensor metric_sums, const AdamTuple& actor_opt,
         const AdamTuple& critic_opt, const std::optional<AdamTuple>& alpha_opt, std::vector<at::Tensor> batch,
         bool update_actor, double gamma, double tau, double log_std_lo, double log_std_hi,
         std::optional<at::Tensor> act_obs, std::optional<at::Tensor> act_noise) {
        TORCH_CHECK(batch.size() == 6, "sac_update_cpu: batch is (obs, action, reward, next_obs, terminated, noise)");
        const fastsac::SacNets nets{actor, critic, target_critic, log_alpha, target_entropy, metric_sums};
        const fastsac::SacBatch b{batch[0], batch[1], batch[2], batch[3], batch[4], batch[5]};
        std::optional<fastsac::AdamRef> alpha;
        if (alpha_opt.has_value()) alpha = fastsac::adam_ref(*alpha_opt);
        const fastsac::AdamRef a = fastsac::adam_ref(actor_opt), c = fastsac::adam_ref(critic_opt);
        py::gil_scoped_release no_gil;
        return fastsac::sac_update_cpu(nets, a, c, alpha, b, {gamma, tau, log_std_lo, log_std_hi, update_actor},
                                       act_obs, act_noise);
      },
      py::arg("actor"), py::arg("critic"), py::arg("target_critic"), py::arg("log_alpha"), py::arg("target_entropy"),
      py::arg("metric_sums"), py::arg("actor_opt"), py::arg("critic_opt"), py::arg("alpha_opt"), py::arg("batch"),
      py::arg("update_actor"), py::arg("gamma"), py::arg("tau"), py::arg("log_std_lo"), py::arg("log_std_hi"),
      py::arg("act_obs"), py::arg("act_noise"),
      "one continuous-SAC update in place (csrc/sac_update_cpu.cpp; fastsac/agents/native_update.py checks the "
      "arguments); the next actions for act_obs when given");
  m.def("categorical_eager", &fastsac::categorical_eager, py::arg("logits"), py::arg("target"), py::arg("grad"),
        py::call_guard<py::gil_scoped_release>(),
        "(probs, log_probs, entropy, gap or None): the forward, an autograd node with its backward when grad");
}
