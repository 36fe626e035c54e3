"""The CPU extension's two builds: the vectorized one (AVX2, what ``fastsac._C`` is on this machine when its CPU
has AVX2, FMA and F16C) and the scalar one (``FASTSAC_CPU_VEC=0``: what any other CPU builds and runs).

The tests of tests/csrc/test_cpp_cpu.py run against the extension in use. Here the scalar build is JIT-built into a
temporary directory and the same accuracy tests (float32 and float64, every shape and configuration of the CPU
cases, and the categorical TD loss's on the cpp backend) are run against it in a child process that cannot see ``fastsac._C``. About a minute: one build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastsac.ops import cpu_build_flags

ROOT = Path(__file__).resolve().parents[2]

# The child hides fastsac._C, so fastsac.ops.extension falls back to the JIT-built CPU module (built by the
# tests' cpp_ext fixture with the flags of fastsac/ops/cpu_build_flags.py, here without the AVX2 ones).
_CHILD = """
import sys

class _HideCompiled:
    def find_spec(self, name, path=None, target=None):
        if name == "fastsac._C":
            raise ImportError("hidden by tests/csrc/test_cpu_builds.py")
        return None

sys.meta_path.insert(0, _HideCompiled())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


@pytest.mark.slow  # builds the extension a second time and runs its accuracy tests: ~5 min here
def test_the_scalar_build_passes_the_accuracy_tests(tmp_path):
    env = {**os.environ, "FASTSAC_CPU_VEC": "0", "FASTSAC_EXTENSION_DIR": str(tmp_path / "ext")}
    assert cpu_build_flags.cxx_flags(environ=env) == ["-O3", *cpu_build_flags.openmp_flags()]
    # test_cpp_cpu.py's CPU accuracy cases, and the categorical TD loss's cases on the cpp backend (its float32
    # projection and row loss have a vectorized and a scalar form)
    selection = ("(cpu and (float32 or float64) and (fwd or bwd or saturated or thread_count)) or "
                 "(categorical_td and cpp)")
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, "tests/csrc/test_cpp_cpu.py", "tests/ops/test_categorical_td.py", "-q", "-p",
         "no:cacheprovider", "-k", selection],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, tail
    assert " passed" in res.stdout and " failed" not in res.stdout, tail
    assert list((tmp_path / "ext").rglob("*.so")), "the child did not JIT-build the scalar extension: " + tail
    ninja = next((tmp_path / "ext").rglob("build.ninja"), None)
    assert ninja is not None and "-mavx2" not in ninja.read_text(), "the scalar build was given the AVX2 flags"


@pytest.mark.skipif(not cpu_build_flags.can_vectorize()[0], reason="this CPU builds the scalar path only")
def test_the_extension_in_use_was_built_vectorized():
    """Where the CPU allows it, the extension that runs (fastsac._C, or the JIT build) has the AVX2 path: its build
    flags come from the one home, so a build that lost them would be the slow scalar one without saying so."""
    from fastsac.ops import extension

    module = extension.load() if extension.is_available("cpu") else extension.load_cpu_extension()
    assert module.cpu_vectorized is True
