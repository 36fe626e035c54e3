// The argument checks of the native discrete-SAC update (discrete_sac_update_cpu.cpp reads and writes every tensor
// through raw pointers): every tensor it is given is checked here, before anything is written, so a call that fails a
// check leaves every tensor as it was. Messages name the entry point and the argument (update_checks.h).
#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

#include "discrete_sac_update.h"
#include "update_checks.h"

namespace fastsac {

using namespace update_checks;  // NOLINT(build/namespaces): check_raw, check_flat, check_adam, ArgName

namespace {

constexpr const char* kDiscrete = "discrete_sac_update_cpu";

}  // namespace

void check_discrete_sac_update(const DiscreteSacNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                               const std::optional<AdamRef>& alpha_opt, const DiscreteSacBatch& batch,
                               const DiscreteSacHyper& hyper) {
  // The actor: [W, b] per hidden layer, then W_logits, b_logits (nn.Linear: W (out, in)).
  const std::vector<Tensor>& actor = nets.actor;
  const int64_t n_actor = static_cast<int64_t>(actor.size());
  TORCH_CHECK(n_actor >= 2 && n_actor % 2 == 0, kDiscrete, ": actor must be [W, b] for each hidden layer, then "
              "W_logits, b_logits: an even number of tensors, at least 2, got ", n_actor);
  check_raw(kDiscrete, {"actor", nullptr, 0}, actor[0], {-1, -1}, at::kFloat,
            "the first layer's weight, (out, obs_dim)");
  const int64_t obs_dim = actor[0].size(1);
  int64_t width = obs_dim;
  for (int64_t l = 0; l < n_actor / 2; ++l) {
    const bool last = 2 * l + 2 == n_actor;
    check_raw(kDiscrete, {"actor", nullptr, 2 * l}, actor[2 * l], {-1, width}, at::kFloat, last ? "W_logits" : "a "
              "hidden layer's weight", ", (out, ", width, ")");
    width = actor[2 * l].size(0);
    check_raw(kDiscrete, {"actor", nullptr, 2 * l + 1}, actor[2 * l + 1], {width}, at::kFloat, "its bias");
  }
  const int64_t n = width;  // the number of actions
  TORCH_CHECK(n >= 1, kDiscrete, ": the actor must have at least one logit, got W_logits of shape ",
              actor[n_actor - 2].sizes());

  // The critics: [W, b] per layer, stacked over C members; the first layer takes obs_dim, the last gives n values.
  const std::vector<Tensor>& critic = nets.critic;
  const int64_t n_critic = static_cast<int64_t>(critic.size());
  TORCH_CHECK(n_critic >= 2 && n_critic % 2 == 0, kDiscrete, ": critic must be [W, b] for each layer, stacked over "
              "the members: an even number of tensors, at least 2, got ", n_critic);
  check_raw(kDiscrete, {"critic", nullptr, 0}, critic[0], {-1, -1, obs_dim}, at::kFloat,
            "the first layer's weights, (members, out, obs_dim) from the actor");
  const int64_t C = critic[0].size(0);
  TORCH_CHECK(C >= 1, kDiscrete, ": critic[0] must stack at least one member, got shape ", critic[0].sizes());
  width = obs_dim;
  for (int64_t l = 0; l < n_critic / 2; ++l) {
    const bool last = 2 * l + 2 == n_critic;
    check_raw(kDiscrete, {"critic", nullptr, 2 * l}, critic[2 * l], {C, last ? n : -1, width}, at::kFloat, "layer ",
              l, "'s weights, (members, ", last ? "the actor's number of logits" : "width", ", ", width, ")");
    width = critic[2 * l].size(1);
    check_raw(kDiscrete, {"critic", nullptr, 2 * l + 1}, critic[2 * l + 1], {C, width}, at::kFloat, "layer ", l,
              "'s biases");
  }
  TORCH_CHECK(nets.target_critic.size() == critic.size(), kDiscrete, ": target_critic must hold one tensor per "
              "tensor of critic (", n_critic, "), got ", nets.target_critic.size());
  for (int64_t i = 0; i < n_critic; ++i) {
    check_raw(kDiscrete, {"target_critic", nullptr, i}, nets.target_critic[i], critic[i].sizes(), at::kFloat, "as ",
              ArgName{"critic", nullptr, i});
  }
  check_raw(kDiscrete, {"log_alpha"}, nets.log_alpha, {}, at::kFloat, "the temperature's log");
  check_raw(kDiscrete, {"target_entropy"}, nets.target_entropy, {}, at::kFloat, "the entropy target");
  check_raw(kDiscrete, {"metric_sums"}, nets.metric_sums, {7}, at::kFloat, "Learner._metric_sums");

  check_adam(kDiscrete, "actor_opt", actor_opt, actor, "actor");
  check_adam(kDiscrete, "critic_opt", critic_opt, critic, "critic");
  if (alpha_opt.has_value()) check_adam(kDiscrete, "alpha_opt", *alpha_opt, {nets.log_alpha}, "log_alpha", false);

  // The batch, of B >= 1 transitions (a mean over none is 0 / 0); each action an index into the n logits.
  check_raw(kDiscrete, {"batch[0] (obs)"}, batch.obs, {-1, obs_dim}, at::kFloat, "(batch, obs_dim) of the actor");
  const int64_t B = batch.obs.size(0);
  TORCH_CHECK(B >= 1, kDiscrete, ": batch[0] (obs) must hold at least one transition, got shape ", batch.obs.sizes());
  check_flat(kDiscrete, {"batch[1] (action)"}, batch.action, B, "one action index per transition");
  const float* a = batch.action.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(a[b] >= 0.0f && a[b] < static_cast<float>(n) && a[b] == std::floor(a[b]), kDiscrete,
                ": batch[1] (action) must hold action indices, integers in [0, ", n, "), got ", a[b], " at ", b);
  }
  check_flat(kDiscrete, {"batch[2] (reward)"}, batch.reward, B, "one per transition");
  check_raw(kDiscrete, {"batch[3] (next_obs)"}, batch.next_obs, {B, obs_dim}, at::kFloat, "as obs");
  check_flat(kDiscrete, {"batch[4] (terminated)"}, batch.terminated, B, "one per transition, 0 or 1");
  TORCH_CHECK(std::isfinite(hyper.gamma) && std::isfinite(hyper.tau), kDiscrete, ": gamma and tau must be finite, "
              "got ", hyper.gamma, " and ", hyper.tau);
}

}  // namespace fastsac
