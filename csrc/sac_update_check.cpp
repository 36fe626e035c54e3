// The argument checks of the native SAC update (sac_update_cpu.cpp reads and writes every tensor through raw
// pointers): every tensor it is given is checked here, before anything is written, so a call that fails a check
// leaves every tensor as it was. Messages name the entry point and the argument (update_checks.h).
#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

#include "sac_update.h"
#include "update_checks.h"

namespace fastsac {

using namespace update_checks;  // NOLINT(build/namespaces): check_raw, check_flat, check_adam, ArgName

namespace {

constexpr const char* kSac = "sac_update_cpu";

}  // namespace

void check_sac_update(const SacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                      const std::optional<AdamRef>& alpha_opt, const SacBatch& batch, const SacHyper& hyper,
                      const OptTensor& act_obs, const OptTensor& act_noise) {
  // The actor: [W, b] per hidden layer, then W_mean, b_mean, W_log_std, b_log_std (nn.Linear: W (out, in)).
  const std::vector<Tensor>& actor = nets.actor;
  const int64_t n_actor = static_cast<int64_t>(actor.size());
  TORCH_CHECK(n_actor >= 6 && n_actor % 2 == 0, kSac, ": actor must be [W, b] for each hidden layer (at least one), "
              "then W_mean, b_mean, W_log_std, b_log_std: an even number of tensors, at least 6, got ", n_actor);
  check_raw(kSac, {"actor", nullptr, 0}, actor[0], {-1, -1}, at::kFloat, "the first layer's weight, (width, obs_dim)");
  const int64_t obs_dim = actor[0].size(1), trunk = n_actor / 2 - 2;
  int64_t width = obs_dim;
  for (int64_t l = 0; l < trunk; ++l) {
    check_raw(kSac, {"actor", nullptr, 2 * l}, actor[2 * l], {-1, width}, at::kFloat, "hidden layer ", l,
              "'s weight, (width, ", width, ")");
    width = actor[2 * l].size(0);
    check_raw(kSac, {"actor", nullptr, 2 * l + 1}, actor[2 * l + 1], {width}, at::kFloat, "hidden layer ", l,
              "'s bias");
  }
  check_raw(kSac, {"actor", nullptr, 2 * trunk}, actor[2 * trunk], {-1, width}, at::kFloat,
            "W_mean, (action_dim, the last hidden width)");
  const int64_t A = actor[2 * trunk].size(0);
  check_raw(kSac, {"actor", nullptr, 2 * trunk + 1}, actor[2 * trunk + 1], {A}, at::kFloat, "b_mean");
  check_raw(kSac, {"actor", nullptr, 2 * trunk + 2}, actor[2 * trunk + 2], {A, width}, at::kFloat,
            "W_log_std, as W_mean");
  check_raw(kSac, {"actor", nullptr, 2 * trunk + 3}, actor[2 * trunk + 3], {A}, at::kFloat, "b_log_std");

  // The critics: [W, b] per layer, stacked over C members: W (C, out, in), b (C, out); the last layer has one output.
  const std::vector<Tensor>& critic = nets.critic;
  const int64_t n_critic = static_cast<int64_t>(critic.size());
  TORCH_CHECK(n_critic >= 2 && n_critic % 2 == 0, kSac, ": critic must be [W, b] for each layer, stacked over the "
              "members: an even number of tensors, at least 2, got ", n_critic);
  check_raw(kSac, {"critic", nullptr, 0}, critic[0], {-1, -1, obs_dim + A}, at::kFloat,
            "the first layer's weights, (members, width, obs_dim + action_dim) from the actor");
  const int64_t C = critic[0].size(0);
  TORCH_CHECK(C >= 1, kSac, ": critic[0] must stack at least one member, got shape ", critic[0].sizes());
  width = obs_dim + A;
  for (int64_t l = 0; l < n_critic / 2; ++l) {
    const bool last = 2 * l + 2 == n_critic;
    check_raw(kSac, {"critic", nullptr, 2 * l}, critic[2 * l], {C, last ? 1 : -1, width}, at::kFloat, "layer ", l,
              "'s weights, (members, ", last ? "1" : "width", ", ", width, ")");
    width = critic[2 * l].size(1);
    check_raw(kSac, {"critic", nullptr, 2 * l + 1}, critic[2 * l + 1], {C, width}, at::kFloat, "layer ", l,
              "'s biases");
  }
  TORCH_CHECK(nets.target_critic.size() == critic.size(), kSac, ": target_critic must hold one tensor per tensor of "
              "critic (", n_critic, "), got ", nets.target_critic.size());
  for (int64_t i = 0; i < n_critic; ++i) {
    check_raw(kSac, {"target_critic", nullptr, i}, nets.target_critic[i], critic[i].sizes(), at::kFloat, "as ",
              ArgName{"critic", nullptr, i});
  }
  check_raw(kSac, {"log_alpha"}, nets.log_alpha, {}, at::kFloat, "the temperature's log");
  check_raw(kSac, {"target_entropy"}, nets.target_entropy, {}, at::kFloat, "the entropy target");
  check_raw(kSac, {"metric_sums"}, nets.metric_sums, {7}, at::kFloat, "Learner._metric_sums");

  check_adam(kSac, "actor_opt", actor_opt, actor, "actor");
  check_adam(kSac, "critic_opt", critic_opt, critic, "critic");
  if (alpha_opt.has_value()) check_adam(kSac, "alpha_opt", *alpha_opt, {nets.log_alpha}, "log_alpha", false);

  // The batch, of B >= 1 transitions (a mean over none is 0 / 0).
  check_raw(kSac, {"batch[0] (obs)"}, batch.obs, {-1, obs_dim}, at::kFloat, "(batch, obs_dim) of the actor");
  const int64_t B = batch.obs.size(0);
  TORCH_CHECK(B >= 1, kSac, ": batch[0] (obs) must hold at least one transition, got shape ", batch.obs.sizes());
  check_raw(kSac, {"batch[1] (action)"}, batch.action, {B, A}, at::kFloat, "(batch, action_dim)");
  check_flat(kSac, {"batch[2] (reward)"}, batch.reward, B, "one per transition");
  check_raw(kSac, {"batch[3] (next_obs)"}, batch.next_obs, {B, obs_dim}, at::kFloat, "as obs");
  check_flat(kSac, {"batch[4] (terminated)"}, batch.terminated, B, "one per transition, 0 or 1");
  check_raw(kSac, {"batch[5] (noise)"}, batch.noise, {2, B, A}, at::kFloat, "(2, batch, action_dim)");

  TORCH_CHECK(act_obs.has_value() == act_noise.has_value(), kSac, ": act_obs and act_noise must both be tensors or "
              "both be None, got act_obs ", act_obs.has_value() ? "given" : "None", " and act_noise ",
              act_noise.has_value() ? "given" : "None");
  if (act_obs.has_value()) {
    check_raw(kSac, {"act_obs"}, *act_obs, {-1, obs_dim}, at::kFloat, "(n, obs_dim)");
    check_raw(kSac, {"act_noise"}, *act_noise, {act_obs->size(0), A}, at::kFloat, "(n, action_dim), n from act_obs");
  }
  TORCH_CHECK(std::isfinite(hyper.gamma) && std::isfinite(hyper.tau), kSac, ": gamma and tau must be finite, got ",
              hyper.gamma, " and ", hyper.tau);
  TORCH_CHECK(std::isfinite(hyper.log_std_lo) && std::isfinite(hyper.log_std_hi) && hyper.log_std_lo < hyper.log_std_hi,
              kSac, ": log-std bounds need finite log_std_lo < log_std_hi, got ", hyper.log_std_lo, " and ",
              hyper.log_std_hi);
}

}  // namespace fastsac
