// The argument checks of the native CrossQ update (crossq_update_cpu.cpp reads and writes every tensor through raw
// pointers): every tensor it is given is checked here, before anything is written, so a call that fails a check
// leaves every tensor as it was. Messages name the entry point and the argument (update_checks.h).
#include <ATen/ATen.h>

#include <cmath>
#include <initializer_list>
#include <optional>
#include <vector>

#include "crossq_update.h"
#include "update_checks.h"

namespace fastsac {

using namespace update_checks;  // NOLINT(build/namespaces): check_raw, check_flat, check_adam, ArgName

namespace {

constexpr const char* kCrossQ = "crossq_update_cpu";

// CrossQ's batch-renormalized network (fastsac/agents/crossq_native.py passes it): brn_w, brn_b of the input, then per
// hidden layer W, b, brn_w, brn_b, then the head tensors; `lead` is {} (the actor) or {C} (the stacked critics).
// Checks the trunk and its statistics (running_mean, running_var, steps per batch-renorm layer) and returns the
// last hidden width.
int64_t check_brn_trunk(const char* name, const std::vector<Tensor>& p, const char* stats_name,
                        const std::vector<Tensor>& stats, int64_t in_dim, int64_t hidden, std::vector<int64_t> lead) {
  const auto shape = [&](std::initializer_list<int64_t> dims) {
    std::vector<int64_t> s = lead;
    s.insert(s.end(), dims);
    return s;
  };
  TORCH_CHECK(static_cast<int64_t>(stats.size()) == 3 * (hidden + 1), kCrossQ, ": ", stats_name, " must hold "
              "running_mean, running_var, steps for each of the ", hidden + 1, " batch-renorm layers of ", name, " (",
              3 * (hidden + 1), " tensors), got ", stats.size());
  int64_t width = in_dim;
  for (int64_t l = 0; l <= hidden; ++l) {
    if (l > 0) {
      check_raw(kCrossQ, {name, nullptr, 4 * l - 2}, p[4 * l - 2], shape({-1, width}), at::kFloat, "hidden layer ",
                l, "'s weight, (width, ", width, ")");
      width = p[4 * l - 2].size(static_cast<int64_t>(lead.size()));
      check_raw(kCrossQ, {name, nullptr, 4 * l - 1}, p[4 * l - 1], shape({width}), at::kFloat, "hidden layer ", l,
                "'s bias");
    }
    const int64_t w = l == 0 ? 0 : 4 * l;
    check_raw(kCrossQ, {name, nullptr, w}, p[w], shape({width}), at::kFloat, "batch renorm ", l, "'s weight");
    check_raw(kCrossQ, {name, nullptr, w + 1}, p[w + 1], shape({width}), at::kFloat, "batch renorm ", l, "'s bias");
    check_raw(kCrossQ, {stats_name, nullptr, 3 * l}, stats[3 * l], shape({width}), at::kFloat, "batch renorm ", l,
              "'s running_mean");
    check_raw(kCrossQ, {stats_name, nullptr, 3 * l + 1}, stats[3 * l + 1], shape({width}), at::kFloat,
              "batch renorm ", l, "'s running_var");
    check_raw(kCrossQ, {stats_name, nullptr, 3 * l + 2}, stats[3 * l + 2], lead, at::kLong, "batch renorm ", l,
              "'s steps");
  }
  return width;
}

}  // namespace

void check_crossq_update(const CrossQNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                         const std::optional<AdamRef>& alpha_opt, const SacBatch& batch, const CrossQHyper& hyper,
                         const BrnConsts& brn, const OptTensor& act_obs, const OptTensor& act_noise) {
  const std::vector<Tensor>& actor = nets.actor;
  const int64_t n_actor = static_cast<int64_t>(actor.size());
  TORCH_CHECK(n_actor >= 10 && (n_actor - 6) % 4 == 0, kCrossQ, ": actor must be brn_w, brn_b, then W, b, brn_w, "
              "brn_b for each hidden layer (at least one), then W_mean, b_mean, W_log_std, b_log_std: 6 + 4k tensors, "
              "k >= 1, got ", n_actor);
  check_raw(kCrossQ, {"actor", nullptr, 0}, actor[0], {-1}, at::kFloat, "the input batch renorm's weight, (obs_dim,)");
  const int64_t obs_dim = actor[0].size(0), actor_hidden = (n_actor - 6) / 4;
  const int64_t width = check_brn_trunk("actor", actor, "actor_stats", nets.actor_stats, obs_dim, actor_hidden, {});
  const int64_t head = 2 + 4 * actor_hidden;
  check_raw(kCrossQ, {"actor", nullptr, head}, actor[head], {-1, width}, at::kFloat,
            "W_mean, (action_dim, the last hidden width)");
  const int64_t A = actor[head].size(0);
  check_raw(kCrossQ, {"actor", nullptr, head + 1}, actor[head + 1], {A}, at::kFloat, "b_mean");
  check_raw(kCrossQ, {"actor", nullptr, head + 2}, actor[head + 2], {A, width}, at::kFloat, "W_log_std, as W_mean");
  check_raw(kCrossQ, {"actor", nullptr, head + 3}, actor[head + 3], {A}, at::kFloat, "b_log_std");

  const std::vector<Tensor>& critic = nets.critic;
  const int64_t n_critic = static_cast<int64_t>(critic.size());
  TORCH_CHECK(n_critic >= 8 && n_critic % 4 == 0, kCrossQ, ": critic must be brn_w, brn_b, then W, b, brn_w, brn_b "
              "for each hidden layer (at least one), then the head's W, b, stacked over the members: 4 + 4k tensors, "
              "k >= 1, got ", n_critic);
  check_raw(kCrossQ, {"critic", nullptr, 0}, critic[0], {-1, obs_dim + A}, at::kFloat,
            "the input batch renorm's weights, (members, obs_dim + action_dim) from the actor");
  const int64_t C = critic[0].size(0), critic_hidden = (n_critic - 4) / 4;
  TORCH_CHECK(C >= 1, kCrossQ, ": critic[0] must stack at least one member, got shape ", critic[0].sizes());
  const int64_t cwidth =
      check_brn_trunk("critic", critic, "critic_stats", nets.critic_stats, obs_dim + A, critic_hidden, {C});
  check_raw(kCrossQ, {"critic", nullptr, n_critic - 2}, critic[n_critic - 2], {C, 1, cwidth}, at::kFloat,
            "the head's weights, (members, 1, the last hidden width)");
  check_raw(kCrossQ, {"critic", nullptr, n_critic - 1}, critic[n_critic - 1], {C, 1}, at::kFloat, "the head's biases");
  check_raw(kCrossQ, {"log_alpha"}, nets.log_alpha, {}, at::kFloat, "the temperature's log");
  check_raw(kCrossQ, {"target_entropy"}, nets.target_entropy, {}, at::kFloat, "the entropy target");
  check_raw(kCrossQ, {"metric_sums"}, nets.metric_sums, {7}, at::kFloat, "Learner._metric_sums");

  check_adam(kCrossQ, "actor_opt", actor_opt, actor, "actor");
  check_adam(kCrossQ, "critic_opt", critic_opt, critic, "critic");
  if (alpha_opt.has_value()) check_adam(kCrossQ, "alpha_opt", *alpha_opt, {nets.log_alpha}, "log_alpha", false);

  check_raw(kCrossQ, {"batch[0] (obs)"}, batch.obs, {-1, obs_dim}, at::kFloat, "(batch, obs_dim) of the actor");
  const int64_t B = batch.obs.size(0);
  TORCH_CHECK(B >= 1, kCrossQ, ": batch[0] (obs) must hold at least one transition, got shape ", batch.obs.sizes());
  check_raw(kCrossQ, {"batch[1] (action)"}, batch.action, {B, A}, at::kFloat, "(batch, action_dim)");
  check_flat(kCrossQ, {"batch[2] (reward)"}, batch.reward, B, "one per transition");
  check_raw(kCrossQ, {"batch[3] (next_obs)"}, batch.next_obs, {B, obs_dim}, at::kFloat, "as obs");
  check_flat(kCrossQ, {"batch[4] (terminated)"}, batch.terminated, B, "one per transition, 0 or 1");
  check_raw(kCrossQ, {"batch[5] (noise)"}, batch.noise, {2, B, A}, at::kFloat, "(2, batch, action_dim)");
  TORCH_CHECK(act_obs.has_value() == act_noise.has_value(), kCrossQ, ": act_obs and act_noise must both be tensors "
              "or both be None, got act_obs ", act_obs.has_value() ? "given" : "None", " and act_noise ",
              act_noise.has_value() ? "given" : "None");
  if (act_obs.has_value()) {
    check_raw(kCrossQ, {"act_obs"}, *act_obs, {-1, obs_dim}, at::kFloat, "(n, obs_dim)");
    check_raw(kCrossQ, {"act_noise"}, *act_noise, {act_obs->size(0), A}, at::kFloat,
              "(n, action_dim), n from act_obs");
  }
  TORCH_CHECK(std::isfinite(hyper.gamma), kCrossQ, ": gamma must be finite, got ", hyper.gamma);
  TORCH_CHECK(std::isfinite(hyper.log_std_lo) && std::isfinite(hyper.log_std_hi) && hyper.log_std_lo < hyper.log_std_hi,
              kCrossQ, ": log-std bounds need finite log_std_lo < log_std_hi, got ", hyper.log_std_lo, " and ",
              hyper.log_std_hi);
  TORCH_CHECK(brn.momentum >= 0.0 && brn.momentum < 1.0 && std::isfinite(brn.eps) && brn.eps > 0.0 &&
              std::isfinite(brn.r_max) && brn.r_max >= 1.0 && std::isfinite(brn.d_max) && brn.d_max >= 0.0 &&
              brn.warmup_steps >= 0, kCrossQ, ": batch renorm needs momentum in [0, 1), finite eps > 0, r_max >= 1, "
              "d_max >= 0 and warmup_steps >= 0, got ", brn.momentum, ", ", brn.eps, ", ", brn.r_max, ", ",
              brn.d_max, ", ", brn.warmup_steps);
}


}  // namespace fastsac
