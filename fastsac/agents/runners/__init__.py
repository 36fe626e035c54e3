"""How a learner's update runs: one interface, a few implementations, chosen once per learner.

A learner's update is one function, ``update(obs, action, reward, next_obs, terminated, noise, update_actor
[, act_obs, act_noise])``, written in the learner's own file (``SACLearner._update``, ...), that writes the
learner's tensors in place. The learner runs it through an :class:`UpdateRunner`, built once from the
:class:`UpdateChoice` that :func:`choose_update` returns:

- ``choice.py``: :func:`choose_update`, the one function that decides how an update runs (``eager``, ``compile``
  or ``native``) and says why;
- ``implementations.py``: the implementations: the update itself (eager), ``torch.compile`` of it as one graph,
  and a learner's hand-written C++ update (native), all called the same way;
- ``checked.py``: the first-call check, a wrapper around any of them: a fast path's first call with new input
  shapes is compared with the eager update, and a failure moves down the chain native -> compile -> eager,
  loudly (``fastsac.fallbacks``);
- ``cuda_graph.py``: on CUDA, replay of whichever of them runs from captured CUDA graphs;
- ``update_runner.py``: :class:`UpdateRunner`, the chain, the graph and the first call's time, as a learner and a
  training run see them;
- ``block.py``: :class:`BlockRunner`, several updates from one call (``Learner.update_many``), captured as one CUDA
  graph on a GPU.

Nothing here knows a learner by name: a learner states whether it has a native update
(``Learner.native_unsupported``) and builds it (``Learner.native_update``).
"""

from fastsac.agents.runners.checked import (GROUP_FLOOR, MOMENT_RTOL, VERIFY_RTOL, CheckedRunner, group_of,
                                            is_moment, moment_difference, restore, snapshot, worst_difference)
from fastsac.agents.runners.choice import UPDATE_BACKENDS, UpdateChoice, choose_update
from fastsac.agents.runners.cuda_graph import GraphRunner
from fastsac.agents.runners.implementations import (
    CompiledRunner,
    EagerRunner,
    NativeRunner,
    autograd_ops_config,
    compile_update,
    trace_autograd_ops_supported,
)
from fastsac.agents.runners.update_runner import UpdateRunner
from fastsac.agents.runners.block import BlockRunner  # noqa: E402  (it builds on UpdateRunner)

__all__ = [
    "UPDATE_BACKENDS",
    "VERIFY_RTOL",
    "BlockRunner",
    "CheckedRunner",
    "CompiledRunner",
    "EagerRunner",
    "GROUP_FLOOR",
    "MOMENT_RTOL",
    "GraphRunner",
    "NativeRunner",
    "UpdateChoice",
    "UpdateRunner",
    "autograd_ops_config",
    "choose_update",
    "compile_update",
    "group_of",
    "is_moment",
    "moment_difference",
    "restore",
    "snapshot",
    "trace_autograd_ops_supported",
    "worst_difference",
]
