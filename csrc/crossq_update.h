// The native CrossQ update on the CPU (crossq_update_cpu.cpp): what it reads and writes, by reference to the
// learner's own tensors (fastsac/agents/crossq_native.py passes them). Float32 (the step counters int64, the Adam
// beta powers float64), contiguous, on the CPU: checked by check_crossq_update before anything is written.
#pragma once

#include <optional>
#include <vector>

#include "ops.h"
#include "sac_update.h"  // AdamRef

namespace fastsac {

// The networks (CrossQ's, fastsac/agents/normed_networks.py) and the state the update writes in place.
//   actor:  brn_w, brn_b (the input's batch renorm), then per hidden layer W, b (nn.Linear), brn_w, brn_b, then
//           W_mean, b_mean, W_log_std, b_log_std
//   critic: the same per member, stacked over C members (leading dim C), ending in the one-output head W, b
//   *_stats: per batch-renorm layer, in the order above: running_mean, running_var (float32), steps (int64;
//           critic: (C,), actor: 0-dim)
struct CrossQNets {
  std::vector<Tensor> actor, actor_stats, critic, critic_stats;
  Tensor log_alpha;       // 0-dim
  Tensor target_entropy;  // 0-dim
  Tensor metric_sums;     // (7,): Learner._metric_sums
};

// The batch-renorm layers' constants (fastsac/agents/normalization.py; every layer of the learner has the same).
struct BrnConsts {
  double momentum, eps, r_max, d_max;
  int64_t warmup_steps;
};

struct CrossQHyper {
  double gamma, log_std_lo, log_std_hi;
  bool update_actor;
};

// Every precondition of crossq_update_cpu (crossq_update_check.cpp), checked before anything is written: each tensor on the CPU, of its dtype,
// contiguous, of the shape its role and its partners give (the actor chains from obs_dim to the two heads of
// action_dim; the critic members' first layer takes obs_dim + action_dim; each stats triple matches its layer; each
// Adam moment its parameter); the batch (B >= 1; noise (2, B, A)); act_obs and act_noise both given or both absent;
// finite hyper-parameters and batch-renorm constants in their ranges. Raises c10::Error naming the argument.
void check_crossq_update(const CrossQNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                         const std::optional<AdamRef>& alpha_opt, const SacBatch& batch, const CrossQHyper& hyper,
                         const BrnConsts& brn, const OptTensor& act_obs, const OptTensor& act_noise);

// One update, in place (check_crossq_update first); the stochastic policy's actions for act_obs after it (with
// act_noise), when given. Not thread-safe on one learner's tensors (bindings.cpp, crossq_update_entry).
std::optional<Tensor> crossq_update_cpu(const CrossQNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                                        const std::optional<AdamRef>& alpha_opt, const SacBatch& batch,
                                        const CrossQHyper& hyper, const BrnConsts& brn, const OptTensor& act_obs,
                                        const OptTensor& act_noise);

}  // namespace fastsac
