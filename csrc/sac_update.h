// The native continuous-SAC update on the CPU (sac_update_cpu.cpp): what it reads and writes, by reference to the
// learner's own tensors (fastsac/agents/sac_native.py passes them). Float32, contiguous, on the CPU: checked by
// check_sac_update before anything is written.
#pragma once

#include <optional>
#include <tuple>
#include <vector>

#include "ops.h"

namespace fastsac {

// The networks and the state the update writes in place.
struct SacNets {
  std::vector<Tensor> actor;          // trunk [W, b]..., then W_mean, b_mean, W_log_std, b_log_std (nn.Linear)
  std::vector<Tensor> critic;         // [W, b]... stacked over members: W (C, out, in), b (C, out)
  std::vector<Tensor> target_critic;  // as critic
  Tensor log_alpha;                   // 0-dim
  Tensor target_entropy;              // 0-dim
  Tensor metric_sums;                 // (7,): Learner._metric_sums
};

// One ForeachAdam (fastsac/agents/optim.py): its state tensors and hyper-parameters; params are the network's.
struct AdamRef {
  std::vector<Tensor> exp_avg, exp_avg_sq;
  Tensor step_count, beta_pows, betas, step_size, bias_correction2_sqrt;
  double lr, beta1, beta2, eps;
};

// Shared by the native updates (native_shared.cpp). ForeachAdam.step on float32 CPU tensors: params[k] and
// grads[k] go with opt.exp_avg[k] and opt.exp_avg_sq[k]; the step count and factors advance once.
void adam_step(const AdamRef& opt, const std::vector<Tensor>& params, const std::vector<Tensor>& grads);
// The min over the critic members of values (C, B) float32, and each member's share of the min's gradient.
std::tuple<Tensor, Tensor> min_over_members(const Tensor& values);

// The scalar critics' squared error, summed as torch sums it (per member the mean over the batch, then the sum over
// members): loss = sum_c mean_b (q_cb - y_b)^2 with q_cb = q[c * member_stride + at[b]] (at == nullptr: at[b] = b);
// its gradient 2 (q_cb - y_b) / B is written at the same places of dq; q_mean is the mean of the q_cb.
struct SquaredError {
  float loss, q_mean;
};
SquaredError squared_error(const float* q, const float* y, int64_t C, int64_t B, int64_t member_stride,
                           const int64_t* at, float* dq);

// An actor step's metrics (the learner's actor_loss, entropy, alpha_loss).
struct ActorMetrics {
  float loss, entropy, alpha_loss;
};
// Learner._metric_sums (7,) += [loss, q_mean, 1] of the critics and, after an actor step, [its three metrics, 1].
void add_metric_sums(const Tensor& sums, const SquaredError& critic, const std::optional<ActorMetrics>& actor);

struct SacBatch {
  Tensor obs, action, reward, next_obs, terminated;
  Tensor noise;  // (2, B, A): [0] the next-state action's, [1] the current action's
};

struct SacHyper {
  double gamma, tau, log_std_lo, log_std_hi;
  bool update_actor;
};

// Every precondition of sac_update_cpu (sac_update_check.cpp), checked before anything is written: each tensor on
// the CPU, float32 (the Adam tuples' beta_pows and betas float64), contiguous, of the shape its role and its partner
// give (the actor's layers chain from obs_dim to the two heads of action_dim; the critic members are stacked and their
// first layer takes obs_dim + action_dim; target_critic[i], exp_avg[i], exp_avg_sq[i] have their parameter's shape;
// log_alpha, target_entropy and the step tensors 0-dim; metric_sums (7,)); the batch (obs (B, obs_dim) with B >= 1,
// action (B, A), reward and terminated B elements, next_obs as obs, noise (2, B, A)); act_obs (N, obs_dim) and
// act_noise (N, A) both given or both absent; finite hyper-parameters. Raises c10::Error naming the argument.
void check_sac_update(const SacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                      const std::optional<AdamRef>& alpha_opt, const SacBatch& batch, const SacHyper& hyper,
                      const OptTensor& act_obs, const OptTensor& act_noise);

// One update, in place (check_sac_update first); the stochastic policy's actions for act_obs after it (with
// act_noise), when given. Not thread-safe on one learner's tensors (bindings.cpp, sac_update_entry).
std::optional<Tensor> sac_update_cpu(const SacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                                     const std::optional<AdamRef>& alpha_opt, const SacBatch& batch,
                                     const SacHyper& hyper, const OptTensor& act_obs, const OptTensor& act_noise);

}  // namespace fastsac
