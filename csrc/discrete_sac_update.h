// The native discrete-SAC update on the CPU (discrete_sac_update_cpu.cpp): what it reads and writes, by reference to
// the learner's own tensors (fastsac/agents/discrete_sac_native.py passes them). Float32, contiguous, on the CPU:
// checked by check_discrete_sac_update before anything is written.
#pragma once

#include <vector>

#include "ops.h"
#include "sac_update.h"  // AdamRef

namespace fastsac {

// The networks (DiscreteActor and DiscreteTwinQ, fastsac/agents/networks.py) and the state the update writes in place.
//   actor:  [W, b] per hidden layer, then W_logits (n, width), b_logits (n) (nn.Linear: W (out, in))
//   critic: [W, b] per layer, stacked over C members: W (C, out, in), b (C, out); the last layer has n outputs
struct DiscreteSacNets {
  std::vector<Tensor> actor, critic, target_critic;
  Tensor log_alpha;       // 0-dim
  Tensor target_entropy;  // 0-dim
  Tensor metric_sums;     // (7,): Learner._metric_sums
};

struct DiscreteSacBatch {
  Tensor obs;         // (B, obs_dim)
  Tensor action;      // B action indices, as float32 (integers in [0, n))
  Tensor reward;      // B
  Tensor next_obs;    // (B, obs_dim)
  Tensor terminated;  // B, 0 or 1
};

struct DiscreteSacHyper {
  double gamma, tau;
  bool update_actor;
};

// Every precondition of discrete_sac_update_cpu (discrete_sac_update_check.cpp), checked before anything is written:
// each tensor on the CPU, float32 (the Adam tuples' beta_pows and betas float64), contiguous, of the shape its role
// and its partners give (the actor's layers chain from obs_dim to n logits; the critic members' layers from obs_dim
// to n values; target_critic and the Adam moments as their parameters; log_alpha, target_entropy 0-dim; metric_sums
// (7,)); the batch (B >= 1; every action an integer in [0, n)); finite gamma and tau. Raises c10::Error naming the
// argument.
void check_discrete_sac_update(const DiscreteSacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                               const std::optional<AdamRef>& alpha_opt, const DiscreteSacBatch& batch,
                               const DiscreteSacHyper& hyper);

// One update, in place (check_discrete_sac_update first). Not thread-safe on one learner's tensors (bindings.cpp,
// discrete_sac_update_entry).
void discrete_sac_update_cpu(const DiscreteSacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                             const std::optional<AdamRef>& alpha_opt, const DiscreteSacBatch& batch,
                             const DiscreteSacHyper& hyper);

}  // namespace fastsac
