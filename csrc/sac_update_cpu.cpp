// One whole continuous-SAC update on the CPU, written out: the native update of fastsac/agents/sac_native.py.
//
// The same arithmetic as SACLearner._update (fastsac/agents/sac.py, learner.py) for its default networks: an MLP
// actor (ReLU trunk, mean and raw log-std heads) and C stacked MLP critics (ReLU, one output), run feature-major as
// EnsembleQ._forward_mlp runs them (the MLP pieces in mlp_cpu.cpp). Float32, contiguous tensors: check_sac_update
// (sac_update_check.cpp) checks every tensor before anything is written; the Python side also decides where it
// applies (fastsac/agents/sac_native.py) and compares the first call with the eager update. The matrix products are
// the same ATen calls as the compiled update's; everything else is a few fused loops over memory the update already
// holds: bias and ReLU in place (the ReLU mask is read from the activation itself), the critic's loss, its gradient
// and the Adam steps in one pass per tensor, no Python between them.
//
// Step order, as the eager update: the target (the actor on s', the fused op, the target critics, the min);
// the critics' loss, gradient and Adam step; then, when update_actor, the actor's loss through the *updated*
// critics, one backward pass into the actor, the actor's and log_alpha's Adam steps; the Polyak lerp of the
// target critics; the metric sums; the next actions (when asked) from the updated actor.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "mlp_cpu.h"
#include "ops.h"
#include "sac_update.h"

namespace fastsac {
namespace {

// ------------------------------------------------------------------------------------------------------ actor
// params [W0, b0, ..., W_{L-1}, b_{L-1}, W_mean, b_mean, W_logstd, b_logstd] (nn.Linear layout, W (out, in)).
// The two heads run as one product: their weights stacked (2A, width), a 12-wide product instead of two 6-wide
// ones (each costs about as much as the pair).
struct ActorPass {
  Tensors acts;  // the trunk's outputs after their ReLU, (B, width)
  Tensor heads;  // (2A, width): [W_mean; W_log_std]
  Tensor mean, log_std;  // (B, A) each, contiguous
};

ActorPass actor_forward(const Tensors& p, const Tensor& obs) {
  const int64_t trunk = static_cast<int64_t>(p.size()) / 2 - 2;
  const int64_t A = p[2 * trunk].size(0);
  ActorPass pass;
  pass.acts = relu_trunk_forward(p, trunk, obs);
  const Tensor& h = pass.acts.back();
  pass.heads = at::cat({p[2 * trunk], p[2 * trunk + 2]}, 0);
  const Tensor out = at::addmm(at::cat({p[2 * trunk + 1], p[2 * trunk + 3]}, 0), h, pass.heads.t());
  pass.mean = out.narrow(1, 0, A).contiguous();
  pass.log_std = out.narrow(1, A, A).contiguous();
  return pass;
}

Tensors actor_backward(const Tensors& p, const ActorPass& pass, const Tensor& obs, const Tensor& d_mean,
                       const Tensor& d_log_std) {
  const int64_t trunk = static_cast<int64_t>(p.size()) / 2 - 2;
  const int64_t A = d_mean.size(1);
  Tensors g(p.size());
  const Tensor& h = pass.acts.back();
  const Tensor d_heads = at::cat({d_mean, d_log_std}, 1);  // (B, 2A)
  const Tensor g_heads = at::mm(d_heads.t(), h);            // (2A, width)
  const Tensor g_bias = d_heads.sum(0);
  g[2 * trunk] = g_heads.narrow(0, 0, A);
  g[2 * trunk + 1] = g_bias.narrow(0, 0, A);
  g[2 * trunk + 2] = g_heads.narrow(0, A, A);
  g[2 * trunk + 3] = g_bias.narrow(0, A, A);
  relu_trunk_backward(p, trunk, pass.acts, obs, at::mm(d_heads, pass.heads), g);
  return g;
}

Tensor policy_actions(const Tensors& actor, const Tensor& obs, const Tensor& noise, BoundsArg bounds) {
  const ActorPass pass = actor_forward(actor, obs);
  return std::get<0>(squashed_gaussian_fwd_cpu(pass.mean, pass.log_std, noise, std::nullopt, std::nullopt, bounds,
                                               false));
}

}  // namespace

std::optional<Tensor> sac_update_cpu(const SacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                                     const std::optional<AdamRef>& alpha_opt, const SacBatch& batch,
                                     const SacHyper& hyper, const OptTensor& act_obs, const OptTensor& act_noise) {
  // Everything below reads and writes through raw float pointers: every shape, dtype and layout is checked first,
  // so a call that raises has written nothing.
  check_sac_update(nets, actor_opt, critic_opt, alpha_opt, batch, hyper, act_obs, act_noise);
  at::AutoGradMode no_grad(false);
  const int64_t B = batch.obs.size(0), obs_dim = batch.obs.size(1), A = batch.action.size(1);
  const BoundsArg bounds{true, hyper.log_std_lo, 0.5 * (hyper.log_std_hi - hyper.log_std_lo)};
  const float alpha = std::exp(nets.log_alpha.item<float>());  // detached, before this step's alpha update

  // Target: r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha * log pi(a'|s')).
  Tensor y;
  {
    const ActorPass next = actor_forward(nets.actor, batch.next_obs);
    auto [next_action, next_log_prob, unused] = squashed_gaussian_fwd_cpu(
        next.mean, next.log_std, batch.noise.select(0, 0), std::nullopt, std::nullopt, bounds, false);
    const Tensor xt = at::cat({batch.next_obs, next_action}, 1).t().contiguous();
    const CriticPass target = critic_forward(nets.target_critic, xt);
    const Tensor next_q = std::get<0>(min_over_members(target.acts.back().view({-1, B})));
    const Tensor not_done = 1.0 - batch.terminated.reshape({-1}).to(at::kFloat);
    y = batch.reward.reshape({-1}).to(at::kFloat) + hyper.gamma * not_done * (next_q - alpha * next_log_prob);
  }

  // Critics: sum over members of mean((q - y)^2), its gradient, Adam.
  const Tensor xt = at::cat({batch.obs, batch.action}, 1).t().contiguous();
  const SquaredError critic_error = scalar_critic_step(nets.critic, critic_opt, xt, y, nullptr);

  std::optional<ActorMetrics> actor_metrics;
  if (hyper.update_actor) {
    const ActorPass pass = actor_forward(nets.actor, batch.obs);
    const Tensor noise = batch.noise.select(0, 1);
    auto [action, log_prob, lp_sum] =
        squashed_gaussian_fwd_cpu(pass.mean, pass.log_std, noise, std::nullopt, std::nullopt, bounds, true);
    const float gap = lp_sum->item<float>() / static_cast<float>(B) + nets.target_entropy.item<float>();
    const Tensor xa = at::cat({batch.obs, action}, 1).t().contiguous();
    const CriticPass critic = critic_forward(nets.critic, xa);  // the updated critics
    const Tensor values = critic.acts.back().view({-1, B});
    auto [q_min, share] = min_over_members(values);
    actor_metrics = ActorMetrics{(alpha * log_prob - q_min).mean().item<float>(), -log_prob.mean().item<float>(),
                                 nets.log_alpha.item<float>() * -gap};
    // d actor_loss / d q_j = -share_j / B; through the critics to the action inputs.
    Tensor d = (share * (-1.0f / static_cast<float>(B))).view({-1, 1, B});
    const Tensor d_hidden = critic_backward(nets.critic, critic, xa, d, false, nullptr);
    const Tensor w_action = nets.critic[0].narrow(2, obs_dim, A);  // (C, h1, A)
    const Tensor d_action = at::bmm(w_action.transpose(1, 2), d_hidden).sum(0).t().contiguous();  // (B, A)
    const Tensor d_log_prob = at::full({B}, alpha / static_cast<float>(B), log_prob.options());
    auto [d_mean, d_log_std] =
        squashed_gaussian_bwd_cpu(d_action, d_log_prob, pass.mean, pass.log_std, noise, std::nullopt, bounds);
    adam_step(actor_opt, nets.actor, actor_backward(nets.actor, pass, batch.obs, d_mean, d_log_std));
    if (alpha_opt.has_value()) {
      adam_step(*alpha_opt, {nets.log_alpha}, {at::full({}, -gap, nets.log_alpha.options())});
    }
  }
  lerp_(nets.target_critic, nets.critic, hyper.tau);

  add_metric_sums(nets.metric_sums, critic_error, actor_metrics);
  if (!act_obs.has_value()) return std::nullopt;
  return policy_actions(nets.actor, *act_obs, *act_noise, bounds);
}

}  // namespace fastsac
