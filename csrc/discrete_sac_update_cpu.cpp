// One whole discrete-SAC update on the CPU, written out: the native update of fastsac/agents/discrete_sac_native.py.
//
// The same arithmetic as DiscreteSACLearner._update (fastsac/agents/discrete_sac.py, learner.py) for its networks:
// an MLP actor (ReLU trunk, one logit per action) and C stacked MLP critics with one value per action, run
// feature-major as EnsembleQ._forward_mlp runs them (the MLP pieces in mlp_cpu.cpp). Every expectation over the
// policy is exact, over all actions, from the fused categorical op's C++ kernels (categorical_fwd_cpu and
// categorical_bwd_cpu, the eager update's own). Float32, contiguous tensors: check_discrete_sac_update
// (discrete_sac_update_check.cpp) checks every tensor, and every action index, before anything is written.
//
// Step order, as the eager update:
//   target  y = r + gamma (1 - terminated) sum_a pi(a|s') (min_j Q'_j(s', a) - alpha log pi(a|s'))
//   critic  sum_j mean_b (Q_j(s, a_b) - y)^2, its gradient (at the taken action only), Adam
//   actor   when update_actor: mean_b sum_a pi(a|s) (alpha log pi(a|s) - min_j Q_j(s, a)) through the *updated*
//           critics (no gradient into them), d logits from the op's backward, the actor's Adam step;
//           alpha_loss = log_alpha (mean_b H(pi(.|s)) - target), whose gradient reaches log_alpha only, its Adam step
//   target  the Polyak lerp of the target critics
// then the metric sums. alpha is exp(log_alpha) before this step's alpha update throughout.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "discrete_sac_update.h"
#include "mlp_cpu.h"
#include "ops.h"

namespace fastsac {
namespace {

// The actor's logits (B, n) and its trunk's outputs; params [W, b] per hidden layer, then W_logits, b_logits.
struct ActorPass {
  Tensors acts;
  Tensor logits;
};

ActorPass actor_forward(const Tensors& p, const Tensor& obs) {
  const int64_t trunk = static_cast<int64_t>(p.size()) / 2 - 1;
  ActorPass pass;
  pass.acts = relu_trunk_forward(p, trunk, obs);
  const Tensor& h = trunk > 0 ? pass.acts.back() : obs;
  pass.logits = at::addmm(p[2 * trunk + 1], h, p[2 * trunk].t());
  return pass;
}

Tensors actor_backward(const Tensors& p, const ActorPass& pass, const Tensor& obs, const Tensor& d_logits) {
  const int64_t trunk = static_cast<int64_t>(p.size()) / 2 - 1;
  Tensors g(p.size());
  const Tensor& h = trunk > 0 ? pass.acts.back() : obs;
  g[2 * trunk] = at::mm(d_logits.t(), h);
  g[2 * trunk + 1] = d_logits.sum(0);
  if (trunk > 0) relu_trunk_backward(p, trunk, pass.acts, obs, at::mm(d_logits, p[2 * trunk]), g);
  return g;
}

// min over the members of the critics' values (C, n, B), as (B, n): the layout of the policy's probabilities.
Tensor min_values(const Tensor& values) {
  const int64_t C = values.size(0), n = values.size(1), B = values.size(2);
  Tensor out = at::empty({B, n}, values.options());
  const float* v = values.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b < B; ++b) {
      float best = v[a * B + b];
      for (int64_t c = 1; c < C; ++c) best = std::min(best, v[(c * n + a) * B + b]);
      o[b * n + a] = best;
    }
  }
  return out;
}

}  // namespace

void discrete_sac_update_cpu(const DiscreteSacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                             const std::optional<AdamRef>& alpha_opt, const DiscreteSacBatch& batch,
                             const DiscreteSacHyper& hyper) {
  // Everything below reads and writes through raw float pointers: every shape, dtype, layout and action index is
  // checked first, so a call that raises has written nothing.
  check_discrete_sac_update(nets, actor_opt, critic_opt, alpha_opt, batch, hyper);
  at::AutoGradMode no_grad(false);
  const int64_t B = batch.obs.size(0);
  const float alpha = std::exp(nets.log_alpha.item<float>());  // detached, before this step's alpha update

  // Target: r + gamma * (1 - terminated) * sum_a pi(a|s') (min_j Q'_j(s', a) - alpha * log pi(a|s')).
  Tensor y;
  {
    const ActorPass next = actor_forward(nets.actor, batch.next_obs);
    auto [probs, log_probs, entropy, unused] = categorical_fwd_cpu(next.logits, false);
    const CriticPass target = critic_forward(nets.target_critic, batch.next_obs.t().contiguous());
    const Tensor next_q = min_values(target.acts.back());
    const Tensor next_v = (probs * (next_q - alpha * log_probs)).sum(-1);
    const Tensor not_done = 1.0 - batch.terminated.reshape({-1});
    y = batch.reward.reshape({-1}) + hyper.gamma * not_done * next_v;
  }

  // Critics: the value of the taken action, sum over members of mean((q - y)^2), its gradient, Adam.
  const Tensor xt = batch.obs.t().contiguous();
  const float* taken = batch.action.data_ptr<float>();
  std::vector<int64_t> at_action(B);  // within a member's (n, B) values: row taken[b], column b
  for (int64_t b = 0; b < B; ++b) at_action[b] = static_cast<int64_t>(taken[b]) * B + b;
  const SquaredError critic_error = scalar_critic_step(nets.critic, critic_opt, xt, y, at_action.data());

  std::optional<ActorMetrics> actor_metrics;
  if (hyper.update_actor) {
    const ActorPass pass = actor_forward(nets.actor, batch.obs);
    auto [probs, log_probs, entropies, entropy_sum] = categorical_fwd_cpu(pass.logits, true);
    const Tensor q = min_values(critic_forward(nets.critic, xt).acts.back());  // the updated critics, no gradient
    const Tensor f = alpha * log_probs - q;  // (B, n)
    const float entropy = entropy_sum->item<float>() / static_cast<float>(B);
    const float gap = entropy - nets.target_entropy.item<float>();
    actor_metrics = ActorMetrics{(probs * f).sum(-1).mean().item<float>(), entropy, nets.log_alpha.item<float>() * gap};
    // d actor_loss / d probs = f / B, d / d log_probs = alpha * probs / B; the op's backward gives d logits.
    const float inv_b = 1.0f / static_cast<float>(B);
    const Tensor d_logits = categorical_bwd_cpu(f * inv_b, probs * (alpha * inv_b), at::zeros({B}, f.options()),
                                                pass.logits);
    adam_step(actor_opt, nets.actor, actor_backward(nets.actor, pass, batch.obs, d_logits));
    if (alpha_opt.has_value()) {
      adam_step(*alpha_opt, {nets.log_alpha}, {at::full({}, gap, nets.log_alpha.options())});
    }
  }
  lerp_(nets.target_critic, nets.critic, hyper.tau);

  add_metric_sums(nets.metric_sums, critic_error, actor_metrics);
}

}  // namespace fastsac
