// The argument checks of the native updates (sac_update_cpu in bindings.cpp, crossq_update_cpu in
// crossq_update_check.cpp): each tensor an update reads or writes through a raw pointer is checked for device, dtype,
// contiguity and shape before anything is written, with a message that names the entry point (`op`) and the argument.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <ostream>
#include <utility>
#include <vector>

#include "sac_update.h"

namespace fastsac {
namespace update_checks {

// An argument's name in a message: base, base[index], base.field or base.field[index].
struct ArgName {
  const char* base;
  const char* field = nullptr;
  int64_t index = -1;
};

inline std::ostream& operator<<(std::ostream& os, const ArgName& n) {
  os << n.base;
  if (n.field != nullptr) os << '.' << n.field;
  if (n.index >= 0) os << '[' << n.index << ']';
  return os;
}

// An expected shape; -1 is any size.
struct ShapeSpec {
  at::IntArrayRef dims;
};

inline std::ostream& operator<<(std::ostream& os, const ShapeSpec& s) {
  if (s.dims.empty()) return os << "[] (0-dim)";
  os << '[';
  for (size_t i = 0; i < s.dims.size(); ++i) {
    if (i > 0) os << ", ";
    if (s.dims[i] < 0) {
      os << '*';
    } else {
      os << s.dims[i];
    }
  }
  return os << ']';
}

// What a tensor that failed a check is.
struct Got {
  const Tensor& t;
};

inline std::ostream& operator<<(std::ostream& os, const Got& g) {
  if (!g.t.defined()) return os << "an undefined tensor";
  os << "a " << g.t.scalar_type() << " tensor of shape " << g.t.sizes() << " on " << g.t.device();
  if (!g.t.is_contiguous()) os << ", not contiguous (strides " << g.t.strides() << ")";
  return os;
}

inline bool is_cpu_contiguous(const Tensor& t, at::ScalarType dtype) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == dtype && t.is_contiguous();
}

// A tensor the update reads or writes through a raw pointer: on the CPU, of `dtype`, contiguous, of `shape`.
template <typename... Why>
inline void check_raw(const char* op, const ArgName& name, const Tensor& t, at::IntArrayRef shape, at::ScalarType dtype,
                      const Why&... why) {
  bool ok = is_cpu_contiguous(t, dtype) && t.dim() == static_cast<int64_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || t.size(static_cast<int64_t>(i)) == shape[i];
  TORCH_CHECK(ok, op, ": ", name, " must be a contiguous ", dtype, " CPU tensor of shape ", ShapeSpec{shape}, " (",
              why..., "), got ", Got{t});
}

// As check_raw, for a tensor read as a flat run of `numel` floats (reward, terminated: any shape).
inline void check_flat(const char* op, const ArgName& name, const Tensor& t, int64_t numel, const char* why) {
  TORCH_CHECK(is_cpu_contiguous(t, at::kFloat) && t.numel() == numel, op, ": ", name,
              " must be a contiguous Float CPU tensor of ", numel, " elements (", why, "), got ", Got{t});
}

// A ForeachAdam over `params` (named `params_name`): one moment pair per parameter, of its shape; the step tensors as
// fastsac/agents/optim.py makes them; hyper-parameters in ForeachAdam's ranges.
// `indexed`: params_name is a list (the message says "as actor[3]"), else the one parameter's name.
inline void check_adam(const char* op, const char* name, const AdamRef& opt, const std::vector<Tensor>& params,
                       const char* params_name, bool indexed = true) {
  for (const auto& [field, moments] : {std::pair{"exp_avg", &opt.exp_avg}, std::pair{"exp_avg_sq", &opt.exp_avg_sq}}) {
    TORCH_CHECK(moments->size() == params.size(), op, ": ", name, '.', field, " must hold one tensor per ",
                indexed ? "tensor of " : "parameter, ", params_name, " (", params.size(), "), got ", moments->size());
    for (size_t k = 0; k < params.size(); ++k) {
      const int64_t i = static_cast<int64_t>(k);
      check_raw(op, {name, field, i}, (*moments)[k], params[k].sizes(), at::kFloat, "as ",
                ArgName{params_name, nullptr, indexed ? i : -1});
    }
  }
  check_raw(op, {name, "step_count"}, opt.step_count, {}, at::kFloat, "ForeachAdam.step_count");
  check_raw(op, {name, "beta_pows"}, opt.beta_pows, {2}, at::kDouble, "ForeachAdam.beta_pows: beta1**t, beta2**t");
  check_raw(op, {name, "betas"}, opt.betas, {2}, at::kDouble, "ForeachAdam._betas");
  check_raw(op, {name, "step_size"}, opt.step_size, {}, at::kFloat, "ForeachAdam.step_size");
  check_raw(op, {name, "bias_correction2_sqrt"}, opt.bias_correction2_sqrt, {}, at::kFloat,
            "ForeachAdam.bias_correction2_sqrt");
  TORCH_CHECK(std::isfinite(opt.lr) && opt.lr >= 0.0, op, ": ", name, " lr must be finite and >= 0, got ", opt.lr);
  TORCH_CHECK(opt.beta1 >= 0.0 && opt.beta1 < 1.0 && opt.beta2 >= 0.0 && opt.beta2 < 1.0, op, ": ", name,
              " betas must be in [0, 1), got (", opt.beta1, ", ", opt.beta2, ")");
  TORCH_CHECK(std::isfinite(opt.eps) && opt.eps >= 0.0, op, ": ", name, " eps must be finite and >= 0, got ",
              opt.eps);
}

}  // namespace update_checks
}  // namespace fastsac
