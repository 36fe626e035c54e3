// One whole CrossQ update on the CPU, written out: the native update of fastsac/agents/crossq_native.py.
//
// The same arithmetic as CrossQLearner._update (fastsac/agents/crossq.py) for the networks CrossQ builds with
// critic_network="mlp": batch renorm on the input and after every Linear -> ReLU (BatchRenormActor, and the critic
// members of normed_networks.critic_member), stacked critic members, a one-output critic head, the actor's mean and
// raw log-std heads. Everything runs feature-major, (members, features, rows), as EnsembleQ._forward_mlp: each batch
// renorm layer's statistics are then a reduction along a contiguous row, and every weight gradient comes out of its
// product in the weight's own layout. The actor is the one-member case of the same code (its tensors viewed with a
// leading 1).
//
// Step order, as the eager update: the next action from the actor in evaluation mode (running statistics); ONE
// critic pass in training mode over the joint batch [(s, a); (s', a')] (batch statistics of both halves, running
// statistics and step counters updated), the target from its detached second half, the squared error of its first
// half, the gradient through the batch statistics (r and d held constant, as Ioffe), Adam; then, when update_actor,
// the actor in training mode, the *updated* critics in evaluation mode, one backward pass into the actor, the
// actor's and log_alpha's Adam steps; the metric sums; the next actions (when asked) from the updated actor in
// evaluation mode. No target critics.
//
// Batch renorm (fastsac/agents/normalization.py), per feature over the N rows: mu, var (biased), sigma_b =
// sqrt(var + eps); sigma = sqrt(running_var + eps); r = clip(sigma_b / sigma, 1/r_max, r_max), d = clip((mu -
// running_mean) / sigma, -d_max, d_max) with (r_max, d_max) = (1, 0) while steps < warmup_steps; y = ((x - mu) /
// sigma_b * r + d) * w + b; then the running statistics and the counter. Its backward with r, d constant, xhat = (x -
// mu) / sigma_b: dw = sum(dy (xhat r + d)), db = sum(dy), dx = w r / sigma_b (dy - mean(dy) - xhat mean(dy xhat)).
// Sums along a row are kept in 16 float lanes and finished in double.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "crossq_update.h"
#include "ops.h"

namespace fastsac {
namespace {

using Tensors = std::vector<Tensor>;
using Vec = at::vec::Vectorized<float>;

double lane_sum(const Vec& v) {
  float lanes[Vec::size()];
  v.store(lanes);
  double s = 0.0;
  for (int64_t i = 0; i < Vec::size(); ++i) s += lanes[i];
  return s;
}

// A (C, n, N) activation row: member c, feature j. `t` may be expanded over the members (stride 0).
inline float* row_ptr(const Tensor& t, int64_t c, int64_t j) {
  return t.data_ptr<float>() + c * t.stride(0) + j * t.stride(1);
}

// One batch-renorm layer's tensors, (C, n) views; steps (C,).
struct Brn {
  Tensor w, b, rm, rv, steps;
};

// What the training-mode backward needs, per row (C * n): mu, sigma_b, r, d.
struct BrnSaved {
  std::vector<float> mu, sigma_b, r, d;
};

// In training mode: when `bias` is given, h = relu(h + bias) first, in place (h then is a Linear's output, its own
// storage); y = batch renorm of h (a new (C, n, N) tensor); the running statistics and the step counters advance.
Tensor brn_train(const Tensor& h, const Tensor* bias, const Brn& L, const BrnConsts& k, BrnSaved* saved) {
  const int64_t C = h.size(0), n = h.size(1), N = h.size(2);
  Tensor y = at::empty({C, n, N}, h.options().memory_format(at::MemoryFormat::Contiguous));
  saved->mu.assign(C * n, 0.0f);
  saved->sigma_b.assign(C * n, 0.0f);
  saved->r.assign(C * n, 0.0f);
  saved->d.assign(C * n, 0.0f);
  const float* w = L.w.data_ptr<float>();
  const float* b = L.b.data_ptr<float>();
  float* rm = L.rm.data_ptr<float>();
  float* rv = L.rv.data_ptr<float>();
  const int64_t* steps = L.steps.data_ptr<int64_t>();
  const float* bias_p = bias != nullptr ? bias->data_ptr<float>() : nullptr;
  const float eps = static_cast<float>(k.eps), mom = static_cast<float>(k.momentum);
  const float one_minus_mom = static_cast<float>(1.0 - k.momentum);
  at::parallel_for(0, C * n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t c = row / n, j = row % n;
      float* x = row_ptr(h, c, j);
      float* out = y.data_ptr<float>() + row * N;
      Vec acc(0.0f);
      int64_t i = 0;
      if (bias_p != nullptr) {
        const Vec bj(bias_p[row]), zero(0.0f);
        for (; i + Vec::size() <= N; i += Vec::size()) {
          const Vec v = at::vec::maximum(Vec::loadu(x + i) + bj, zero);
          v.store(x + i);
          acc = acc + v;
        }
        for (; i < N; ++i) x[i] = std::max(x[i] + bias_p[row], 0.0f);
      } else {
        for (; i + Vec::size() <= N; i += Vec::size()) acc = acc + Vec::loadu(x + i);
      }
      double sum = lane_sum(acc);
      for (int64_t t = i; t < N; ++t) sum += x[t];
      const float mu = static_cast<float>(sum / static_cast<double>(N));
      Vec acc2(0.0f);
      const Vec vmu(mu);
      i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) {
        const Vec dv = Vec::loadu(x + i) - vmu;
        acc2 = acc2 + dv * dv;
      }
      double sq = lane_sum(acc2);
      for (; i < N; ++i) sq += static_cast<double>(x[i] - mu) * static_cast<double>(x[i] - mu);
      const float var = static_cast<float>(sq / static_cast<double>(N));
      const float sigma_b = std::sqrt(var + eps);
      const float sigma = std::sqrt(rv[row] + eps);
      const bool warm = steps[c] >= k.warmup_steps;
      const float r_max = warm ? static_cast<float>(k.r_max) : 1.0f, d_max = warm ? static_cast<float>(k.d_max) : 0.0f;
      const float r = std::min(std::max(sigma_b / sigma, 1.0f / r_max), r_max);
      const float d = std::min(std::max((mu - rm[row]) / sigma, -d_max), d_max);
      rm[row] = std::fma(one_minus_mom, mu, rm[row] * mom);
      rv[row] = std::fma(one_minus_mom, var, rv[row] * mom);
      saved->mu[row] = mu;
      saved->sigma_b[row] = sigma_b;
      saved->r[row] = r;
      saved->d[row] = d;
      const Vec vsb(sigma_b), vr(r), vd(d), vw(w[row]), vb(b[row]);
      i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) {
        (((Vec::loadu(x + i) - vmu) / vsb * vr + vd) * vw + vb).store(out + i);
      }
      for (; i < N; ++i) out[i] = ((x[i] - mu) / sigma_b * r + d) * w[row] + b[row];
    }
  });
  int64_t* steps_w = L.steps.data_ptr<int64_t>();
  for (int64_t c = 0; c < C; ++c) steps_w[c] += 1;
  return y;
}

// The training-mode backward, in place: dz (C, n, N) becomes dx, masked by h > 0 when relu (h is a ReLU's output);
// gw, gb (C, n) get the layer's parameter gradients and, when given, lin_gb (C, n) the row sums of the masked dx
// (the bias gradient of the Linear below). With want_dx false only gw, gb are formed.
void brn_train_backward(Tensor& dz, const Tensor& h, const BrnSaved& s, const Tensor& w, bool relu, Tensor& gw,
                        Tensor& gb, Tensor* lin_gb, bool want_dx) {
  const int64_t C = dz.size(0), n = dz.size(1), N = dz.size(2);
  gw = at::empty({C, n}, dz.options());
  gb = at::empty({C, n}, dz.options());
  if (lin_gb != nullptr) *lin_gb = at::empty({C, n}, dz.options());
  float* gwp = gw.data_ptr<float>();
  float* gbp = gb.data_ptr<float>();
  float* lgp = lin_gb != nullptr ? lin_gb->data_ptr<float>() : nullptr;
  const float* wp = w.data_ptr<float>();
  at::parallel_for(0, C * n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t c = row / n, j = row % n;
      float* g = dz.data_ptr<float>() + row * N;
      const float* x = row_ptr(h, c, j);
      const float mu = s.mu[row], sb = s.sigma_b[row], r = s.r[row], d = s.d[row];
      const Vec vmu(mu), vsb(sb);
      Vec a1(0.0f), a2(0.0f);
      int64_t i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) {
        const Vec gi = Vec::loadu(g + i);
        a1 = a1 + gi;
        a2 = a2 + gi * ((Vec::loadu(x + i) - vmu) / vsb);
      }
      double sum_g = lane_sum(a1), sum_gx = lane_sum(a2);
      for (int64_t t = i; t < N; ++t) {
        sum_g += g[t];
        sum_gx += static_cast<double>(g[t]) * ((x[t] - mu) / sb);
      }
      gwp[row] = static_cast<float>(r * sum_gx + d * sum_g);
      gbp[row] = static_cast<float>(sum_g);
      if (!want_dx) continue;
      const float scale = wp[row] * r / sb;
      const float mg = static_cast<float>(sum_g / N), mgx = static_cast<float>(sum_gx / N);
      const Vec vs(scale), vmg(mg), vmgx(mgx), zero(0.0f);
      Vec a3(0.0f);
      i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) {
        const Vec xi = Vec::loadu(x + i);
        Vec o = vs * (Vec::loadu(g + i) - vmg - (xi - vmu) / vsb * vmgx);
        if (relu) o = Vec::blendv(zero, o, xi > zero);
        o.store(g + i);
        a3 = a3 + o;
      }
      double sum_o = lane_sum(a3);
      for (; i < N; ++i) {
        float o = scale * (g[i] - mg - (x[i] - mu) / sb * mgx);
        if (relu && !(x[i] > 0.0f)) o = 0.0f;
        g[i] = o;
        sum_o += o;
      }
      if (lgp != nullptr) lgp[row] = static_cast<float>(sum_o);
    }
  });
}

// In evaluation mode (running statistics, nothing changes): when `bias` is given, h = relu(h + bias) in place first;
// returns y = (h - running_mean) * rsqrt(running_var + eps) * w + b.
Tensor brn_eval(const Tensor& h, const Tensor* bias, const Brn& L, const BrnConsts& k) {
  const int64_t C = h.size(0), n = h.size(1), N = h.size(2);
  Tensor y = at::empty({C, n, N}, h.options().memory_format(at::MemoryFormat::Contiguous));
  const float* w = L.w.data_ptr<float>();
  const float* b = L.b.data_ptr<float>();
  const float* rm = L.rm.data_ptr<float>();
  const float* rv = L.rv.data_ptr<float>();
  const float* bias_p = bias != nullptr ? bias->data_ptr<float>() : nullptr;
  const float eps = static_cast<float>(k.eps);
  at::parallel_for(0, C * n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      float* x = row_ptr(h, row / n, row % n);
      float* out = y.data_ptr<float>() + row * N;
      const float inv = 1.0f / std::sqrt(rv[row] + eps);
      const Vec vm(rm[row]), vinv(inv), vw(w[row]), vb(b[row]), zero(0.0f);
      const Vec bj(bias_p != nullptr ? bias_p[row] : 0.0f);
      int64_t i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) {
        Vec xi = Vec::loadu(x + i);
        if (bias_p != nullptr) {
          xi = at::vec::maximum(xi + bj, zero);
          xi.store(x + i);
        }
        ((xi - vm) * vinv * vw + vb).store(out + i);
      }
      for (; i < N; ++i) {
        if (bias_p != nullptr) x[i] = std::max(x[i] + bias_p[row], 0.0f);
        out[i] = (x[i] - rm[row]) * inv * w[row] + b[row];
      }
    }
  });
  return y;
}

// ------------------------------------------------------------------------------------------- the two networks
// p: [brn_w, brn_b, (W, b, brn_w, brn_b) per hidden layer, head tensors...] with a leading member dimension;
// stats: [running_mean, running_var, steps] per batch-renorm layer.
struct Net {
  Tensors p, stats;
  int64_t hidden;  // L, the number of hidden layers
  Brn brn(int64_t l) const { return {p[l == 0 ? 0 : 4 * l], p[l == 0 ? 1 : 4 * l + 1], stats[3 * l],
                                     stats[3 * l + 1], stats[3 * l + 2]}; }
  const Tensor& W(int64_t l) const { return p[4 * l - 2]; }  // hidden layer l = 1..L
  const Tensor& bias(int64_t l) const { return p[4 * l - 1]; }
  int64_t head() const { return 2 + 4 * hidden; }
};

struct TrunkPass {
  Tensor x;     // the input, (C or expanded, in, N)
  Tensors h;    // h[l], l = 1..L: the ReLU outputs (h[0] unused)
  Tensors z;    // z[l], l = 0..L: the batch renorm outputs (the next layer's inputs)
  std::vector<BrnSaved> saved;
};

TrunkPass trunk_forward(const Net& net, const Tensor& x, bool training, const BrnConsts& k) {
  TrunkPass pass;
  pass.x = x;
  pass.h.resize(net.hidden + 1);
  pass.saved.resize(net.hidden + 1);
  pass.z.push_back(training ? brn_train(x, nullptr, net.brn(0), k, &pass.saved[0])
                            : brn_eval(x, nullptr, net.brn(0), k));
  for (int64_t l = 1; l <= net.hidden; ++l) {
    pass.h[l] = at::bmm(net.W(l), pass.z.back());
    pass.z.push_back(training ? brn_train(pass.h[l], &net.bias(l), net.brn(l), k, &pass.saved[l])
                              : brn_eval(pass.h[l], &net.bias(l), net.brn(l), k));
  }
  return pass;
}

// Training-mode backward from dz (the gradient of z[L]) into grads[0 .. head) (the trunk's parameters).
void trunk_backward(const Net& net, const TrunkPass& pass, Tensor dz, Tensors& g) {
  for (int64_t l = net.hidden; l >= 1; --l) {
    brn_train_backward(dz, pass.h[l], pass.saved[l], net.p[4 * l], true, g[4 * l], g[4 * l + 1], &g[4 * l - 1],
                       true);
    g[4 * l - 2] = at::bmm(dz, pass.z[l - 1].transpose(1, 2));
    dz = at::bmm(net.W(l).transpose(1, 2), dz);
  }
  brn_train_backward(dz, pass.x, pass.saved[0], net.p[0], false, g[0], g[1], nullptr, false);  // the input's
}

// out[c, j, i] = w[c, 0, j] * d[c, 0, i]: below a one-output layer (a product with an inner size of 1).
Tensor head_backward(const Tensor& w, const Tensor& d) {
  const int64_t C = w.size(0), J = w.size(2), N = d.size(2);
  Tensor out = at::empty({C, J, N}, d.options());
  const float* wp = w.data_ptr<float>();
  const float* dp = d.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, C * J, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const Vec wi(wp[r]);
      const float* drow = dp + (r / J) * N;
      float* orow = op + r * N;
      int64_t i = 0;
      for (; i + Vec::size() <= N; i += Vec::size()) (wi * Vec::loadu(drow + i)).store(orow + i);
      for (; i < N; ++i) orow[i] = wp[r] * drow[i];
    }
  });
  return out;
}

// The critics' values (C, N) from a trunk pass: the one-output head.
Tensor critic_values(const Net& net, const TrunkPass& pass) {
  const int64_t C = net.p[0].size(0);
  return at::bmm(net.p[net.head()], pass.z.back()).view({C, -1}).add_(net.p[net.head() + 1]);
}


// The actor's (mean, raw log-std), each (B, A) contiguous, from a trunk pass; heads: [W_mean; W_log_std] (1, 2A, w).
std::tuple<Tensor, Tensor> actor_heads(const Net& net, const TrunkPass& pass, const Tensor& heads) {
  const int64_t A = net.p[net.head()].size(1);
  const Tensor bias = at::cat({net.p[net.head() + 1], net.p[net.head() + 3]}, 1).view({1, 2 * A, 1});
  const Tensor out = at::baddbmm(bias, heads, pass.z.back()).select(0, 0);  // (2A, B)
  return {out.narrow(0, 0, A).t().contiguous(), out.narrow(0, A, A).t().contiguous()};
}

Tensor feature_major(const Tensor& rows) { return rows.t().contiguous().unsqueeze(0); }  // (B, F) -> (1, F, B)


// The stochastic policy's (action, log_prob) for obs (B, obs_dim), the actor in evaluation mode.
std::tuple<Tensor, Tensor> policy_eval(const Net& actor, const Tensor& heads, const Tensor& obs, const Tensor& noise,
                                       BoundsArg bounds, const BrnConsts& k) {
  const TrunkPass pass = trunk_forward(actor, feature_major(obs), false, k);
  auto [mean, log_std] = actor_heads(actor, pass, heads);
  auto [action, log_prob, unused] =
      squashed_gaussian_fwd_cpu(mean, log_std, noise, std::nullopt, std::nullopt, bounds, false);
  return {action, log_prob};
}

// With a leading member dimension of 1 (the actor as the one-member case); 0-dim step counters as (1,).
Tensors stacked(const Tensors& ts) {
  Tensors out;
  for (const Tensor& t : ts) out.push_back(t.dim() == 0 ? t.view({1}) : t.unsqueeze(0));
  return out;
}

}  // namespace

std::optional<Tensor> crossq_update_cpu(const CrossQNets& nets, const AdamRef& actor_opt, const AdamRef& critic_opt,
                                        const std::optional<AdamRef>& alpha_opt, const SacBatch& batch,
                                        const CrossQHyper& hyper, const BrnConsts& brn, const OptTensor& act_obs,
                                        const OptTensor& act_noise) {
  // Everything below reads and writes through raw pointers: every tensor is checked first, so a call that raises
  // has written nothing.
  check_crossq_update(nets, actor_opt, critic_opt, alpha_opt, batch, hyper, brn, act_obs, act_noise);
  at::AutoGradMode no_grad(false);
  const int64_t B = batch.obs.size(0), obs_dim = batch.obs.size(1), A = batch.action.size(1);
  const int64_t actor_hidden = (static_cast<int64_t>(nets.actor.size()) - 6) / 4;
  const Net actor{stacked(nets.actor), stacked(nets.actor_stats), actor_hidden};
  const Net critic{nets.critic, nets.critic_stats, (static_cast<int64_t>(nets.critic.size()) - 4) / 4};
  const int64_t C = nets.critic[0].size(0);
  const BoundsArg bounds{true, hyper.log_std_lo, 0.5 * (hyper.log_std_hi - hyper.log_std_lo)};
  const float alpha = std::exp(nets.log_alpha.item<float>());  // detached, before this step's alpha update
  const auto actor_head_weights = [&] {
    return at::cat({nets.actor[actor.head()], nets.actor[actor.head() + 2]}, 0).unsqueeze(0);
  };

  // a' ~ pi(.|s'), the actor in evaluation mode.
  auto [next_action, next_log_prob] =
      policy_eval(actor, actor_head_weights(), batch.next_obs, batch.noise.select(0, 0), bounds, brn);

  // ONE critic pass in training mode over [(s, a); (s', a')]; the target from its second half.
  const Tensor joint = at::cat({at::cat({batch.obs, batch.action}, 1), at::cat({batch.next_obs, next_action}, 1)}, 0);
  const Tensor xt = joint.t().contiguous();  // (in, 2B), shared by the members
  const TrunkPass pass = trunk_forward(critic, xt.unsqueeze(0).expand({C, xt.size(0), xt.size(1)}), true, brn);
  const Tensor q_joint = critic_values(critic, pass);  // (C, 2B)
  const Tensor next_q = std::get<0>(min_over_members(q_joint.narrow(1, B, B).contiguous()));
  const Tensor not_done = 1.0 - batch.terminated.reshape({-1});
  const Tensor y = batch.reward.reshape({-1}) + hyper.gamma * not_done * (next_q - alpha * next_log_prob);

  SquaredError critic_error{};
  {
    Tensor dq = at::zeros({C, 1, 2 * B}, q_joint.options());  // the second half is detached: no gradient at the head
    critic_error = squared_error(q_joint.data_ptr<float>(), y.data_ptr<float>(), C, B, 2 * B, nullptr,
                                 dq.data_ptr<float>());
    Tensors g(critic.p.size());
    g[critic.head()] = at::bmm(dq, pass.z.back().transpose(1, 2));  // (C, 1, width)
    g[critic.head() + 1] = dq.sum(2);                              // (C, 1)
    trunk_backward(critic, pass, head_backward(critic.p[critic.head()], dq), g);
    adam_step(critic_opt, nets.critic, g);
  }

  std::optional<ActorMetrics> actor_metrics;
  if (hyper.update_actor) {
    // The actor in training mode (its statistics advance), the updated critics in evaluation mode.
    const Tensor heads = actor_head_weights();
    const TrunkPass apass = trunk_forward(actor, feature_major(batch.obs), true, brn);
    auto [mean, log_std] = actor_heads(actor, apass, heads);
    const Tensor noise = batch.noise.select(0, 1);
    auto [action, log_prob, lp_sum] =
        squashed_gaussian_fwd_cpu(mean, log_std, noise, std::nullopt, std::nullopt, bounds, true);
    const float gap = lp_sum->item<float>() / static_cast<float>(B) + nets.target_entropy.item<float>();
    const Tensor xa = at::cat({batch.obs, action}, 1).t().contiguous();  // (in, B)
    const TrunkPass cpass = trunk_forward(critic, xa.unsqueeze(0).expand({C, xa.size(0), B}), false, brn);
    auto [q_min, share] = min_over_members(critic_values(critic, cpass));
    actor_metrics = ActorMetrics{(alpha * log_prob - q_min).mean().item<float>(), -log_prob.mean().item<float>(),
                                 nets.log_alpha.item<float>() * -gap};
    // d actor_loss / d q_c = -share_c / B; back through the critics in evaluation mode to the action inputs.
    Tensor dz = head_backward(critic.p[critic.head()], (share * (-1.0f / static_cast<float>(B))).view({C, 1, B}));
    const float eps = static_cast<float>(brn.eps);
    for (int64_t l = critic.hidden; l >= 1; --l) {  // dz *= w * rsqrt(running_var + eps), masked by the ReLU
      const Brn L = critic.brn(l);
      const Tensor scale = (L.w * (L.rv + eps).rsqrt()).unsqueeze(2);
      dz.mul_(scale).mul_(cpass.h[l] > 0);
      const Tensor& W = critic.W(l);
      dz = l > 1 ? at::bmm(W.transpose(1, 2), dz) : at::bmm(W.narrow(2, obs_dim, A).transpose(1, 2), dz);
    }
    const Brn L0 = critic.brn(0);
    const Tensor scale0 = (L0.w.narrow(1, obs_dim, A) * (L0.rv.narrow(1, obs_dim, A) + eps).rsqrt()).unsqueeze(2);
    const Tensor d_action = (dz * scale0).sum(0).t().contiguous();  // (B, A)
    const Tensor d_log_prob = at::full({B}, alpha / static_cast<float>(B), log_prob.options());
    auto [d_mean, d_log_std] =
        squashed_gaussian_bwd_cpu(d_action, d_log_prob, mean, log_std, noise, std::nullopt, bounds);
    const Tensor d_heads = at::cat({d_mean, d_log_std}, 1).t().contiguous().unsqueeze(0);  // (1, 2A, B)
    Tensors g(actor.p.size());
    const Tensor g_heads = at::bmm(d_heads, apass.z.back().transpose(1, 2)).select(0, 0);  // (2A, width)
    const Tensor g_bias = d_heads.sum(2).select(0, 0);
    const int64_t h = actor.head();
    g[h] = g_heads.narrow(0, 0, A);
    g[h + 1] = g_bias.narrow(0, 0, A);
    g[h + 2] = g_heads.narrow(0, A, A);
    g[h + 3] = g_bias.narrow(0, A, A);
    trunk_backward(actor, apass, at::bmm(heads.transpose(1, 2), d_heads), g);
    adam_step(actor_opt, nets.actor, g);
    if (alpha_opt.has_value()) {
      adam_step(*alpha_opt, {nets.log_alpha}, {at::full({}, -gap, nets.log_alpha.options())});
    }
  }

  add_metric_sums(nets.metric_sums, critic_error, actor_metrics);
  if (!act_obs.has_value()) return std::nullopt;
  return std::get<0>(policy_eval(actor, actor_head_weights(), *act_obs, *act_noise, bounds, brn));
}

}  // namespace fastsac
