"""Fused SAC ops behind one API on three backends: ``torch`` (reference), ``triton``, ``cpp`` (the C++ extension).

Public names (stable; other projects import them)::

    squashed_gaussian(mean, log_std, noise, *, action_scale=None, action_bias=None, log_std_bounds=None,
                      backend="auto") -> (action, log_prob)
    squashed_gaussian_with_alpha_loss(mean, log_std, noise, log_alpha, target_entropy, *, ...)
                      -> (action, log_prob, alpha_loss)
    categorical(logits, *, backend="auto") -> (probs, log_probs, entropy)
    categorical_with_alpha_loss(logits, log_alpha, target_entropy, *, backend="auto")
                      -> (probs, log_probs, entropy, alpha_loss)
    categorical_td_loss(logits, target_probs, reward, not_done, entropy_term, *, gamma, v_min, v_max,
                        backend="auto") -> loss
                      # C51 cross-entropy of (..., B, K) critic logits against the projected soft TD target,
                      # shape (..., B); gradient to the logits only: grad * (softmax(logits) * sum(m) - m)
    deterministic_action(mean, *, action_scale=None, action_bias=None) -> tanh(mean) * scale + bias
    available_backends(device=None) -> list[str]              # e.g. ["torch", "triton", "cpp"]
    resolve_backend(*tensors, backend="auto") -> str          # the backend that runs for these tensors
"""

from .backends import BACKENDS, BackendUnavailableError, available_backends, resolve_backend
from .categorical import categorical, categorical_with_alpha_loss
from .categorical_td import categorical_td_loss
from .squashed_gaussian import deterministic_action, squashed_gaussian, squashed_gaussian_with_alpha_loss

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "available_backends",
    "categorical",
    "categorical_td_loss",
    "categorical_with_alpha_loss",
    "deterministic_action",
    "resolve_backend",
    "squashed_gaussian",
    "squashed_gaussian_with_alpha_loss",
]
