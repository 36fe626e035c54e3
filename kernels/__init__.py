"""Triton kernels for fastsac (installed as ``fastsac.kernels``).

The backend primitives of ``fastsac/ops/reference.py``, with the same signatures and semantics. They need CUDA
tensors, or CPU tensors with ``TRITON_INTERPRET=1`` set before this package is imported (tests). This package
imports only triton and torch; ``fastsac.ops`` is the only place that chooses a backend.
"""

from .categorical import categorical_bwd, categorical_fwd
from .categorical_td import categorical_td_bwd, categorical_td_fwd
from .squashed_gaussian import SUPPORTED_DTYPES, squashed_gaussian_bwd, squashed_gaussian_fwd

__all__ = ["SUPPORTED_DTYPES", "squashed_gaussian_fwd", "squashed_gaussian_bwd", "categorical_fwd", "categorical_bwd",
           "categorical_td_fwd", "categorical_td_bwd"]
