"""The CPU build's flags (one home for setup.py and the JIT loader): the vectorized path only where it can run."""

from __future__ import annotations

from fastsac.ops import cpu_build_flags as flags

AVX2_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi2\n\nprocessor\t: 1\nflags\t\t: fpu\n"
OLD_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx\n"


def test_avx2_fma_f16c_on_x86_64_turn_the_vector_path_on():
    assert flags.can_vectorize("x86_64", AVX2_CPUINFO, environ={}) == (True, "x86-64 with AVX2, FMA and F16C")
    got = flags.cxx_flags(machine="x86_64", cpuinfo=AVX2_CPUINFO, environ={})
    assert got == ["-O3", "-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2",
                   *flags.openmp_flags()]


def test_anything_else_builds_the_scalar_path_and_says_why():
    assert flags.can_vectorize("x86_64", OLD_CPUINFO, environ={}) == (False, "the CPU lacks avx2, f16c, fma")
    assert flags.can_vectorize("aarch64", AVX2_CPUINFO, environ={}) == (False, "the CPU is aarch64, not x86-64")
    assert flags.can_vectorize("x86_64", AVX2_CPUINFO, environ={"FASTSAC_CPU_VEC": "0"}) == (False,
                                                                                               "FASTSAC_CPU_VEC=0")
    assert flags.cxx_flags(machine="aarch64", cpuinfo=AVX2_CPUINFO, environ={}) == ["-O3", *flags.openmp_flags()]


def test_openmp_where_torch_threads_with_it_on_linux():
    """at::parallel_for is inline: without -fopenmp the kernels' rows would run on one thread."""
    assert flags.openmp_flags("linux", torch_has_openmp=True) == ["-fopenmp"]
    assert flags.openmp_flags("linux", torch_has_openmp=False) == []
    assert flags.openmp_flags("darwin", torch_has_openmp=True) == []
    assert flags.link_flags() == flags.openmp_flags()


def test_only_the_first_processors_flags_count():
    assert flags.cpu_flags_of(AVX2_CPUINFO) == {"fpu", "sse2", "avx", "avx2", "fma", "f16c", "bmi2"}
    assert flags.cpu_flags_of("no flags here") == set()
