"""setup.py: the optional CUDA extension never breaks an install.

Finding the toolkit the way machines lay it out (CUDA_HOME, CUDA_PATH, the real toolkit behind the nvcc on PATH,
the usual folders), the arch list, the reasons for skipping, and a failed build (compile or link) that leaves a
successful install with one line saying why, unless FASTSAC_FORCE_CUDA=1. The pip install with a deliberately
wrong toolkit needs a CUDA build of torch; scripts/check_cuda_build.sh runs it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup_py(monkeypatch):
    """setup.py as a module (its setup() call runs only as __main__), with no CUDA variables from this shell."""
    for var in ("CUDA_HOME", "CUDA_PATH", "FASTSAC_FORCE_CUDA", "FASTSAC_SKIP_CUDA", "FASTSAC_SKIP_EXTENSION",
                "TORCH_CUDA_ARCH_LIST", "FASTSAC_CPU_VEC"):
        monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("fastsac_setup_under_test", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _toolkit(root: Path, release: str = "13.0") -> Path:
    """A toolkit's layout: bin/nvcc (answering --version and --dryrun as nvcc does) and lib64/libcudart.so."""
    _script(root / "bin" / "nvcc", f'case "$*" in *--dryrun*) echo "#$ TOP={root}/bin/.." >&2 ;; '
                                   f'*) echo "Cuda compilation tools, release {release}, V{release}.1" ;; esac')
    (root / "lib64").mkdir(parents=True)
    (root / "lib64" / "libcudart.so").write_bytes(b"")
    return root


# ---------------------------------------------------------------------------------------------------------------
# the toolkit and the arch list


def test_arch_flags_cover_ampere_ada_hopper_with_ptx(setup_py):
    flags = setup_py.cuda_arch_flags({})
    for sm in ("80", "86", "89", "90"):
        assert f"-gencode=arch=compute_{sm},code=sm_{sm}" in flags
    assert flags[-1] == "-gencode=arch=compute_90,code=compute_90"  # PTX for GPUs newer than Hopper
    assert setup_py.cuda_arch_flags({"TORCH_CUDA_ARCH_LIST": "9.0"}) == []  # torch turns the list into flags


def test_is_toolkit_needs_nvcc_and_cudart(setup_py, tmp_path):
    assert setup_py.is_toolkit(_toolkit(tmp_path / "cuda"))
    (tmp_path / "nolib" / "bin").mkdir(parents=True)
    _script(tmp_path / "nolib" / "bin" / "nvcc", "exit 0")
    assert not setup_py.is_toolkit(tmp_path / "nolib")  # /usr/local with a wrapper nvcc in /usr/local/bin
    assert not setup_py.is_toolkit(tmp_path / "missing")
    targets = tmp_path / "targets_layout"
    _script(targets / "bin" / "nvcc", "exit 0")
    (targets / "targets" / "x86_64-linux" / "lib").mkdir(parents=True)
    (targets / "targets" / "x86_64-linux" / "lib" / "libcudart.so.13").write_bytes(b"")
    assert setup_py.is_toolkit(targets)


def test_cuda_home_then_cuda_path_are_taken_as_given(setup_py, tmp_path):
    env = {"CUDA_HOME": "/wrong/on/purpose", "CUDA_PATH": str(tmp_path), "PATH": ""}
    assert setup_py.find_cuda_home(env, search=()) == ("/wrong/on/purpose", "CUDA_HOME")
    del env["CUDA_HOME"]
    assert setup_py.find_cuda_home(env, search=()) == (str(tmp_path), "CUDA_PATH")


def test_nvcc_on_path_symlink_and_wrapper(setup_py, tmp_path):
    real = _toolkit(tmp_path / "cuda-13.0")
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    (link_dir / "nvcc").symlink_to(real / "bin" / "nvcc")
    root, how = setup_py.find_cuda_home({"PATH": str(link_dir)}, search=())
    assert root == str(real.resolve()) and "nvcc on PATH" in how
    # a wrapper script outside the toolkit (as /usr/local/bin/nvcc on the CI machine): its dry run names the root
    wrapper_dir = tmp_path / "usr_local_bin"
    _script(wrapper_dir / "nvcc", f'exec {real}/bin/nvcc "$@"')
    root, how = setup_py.find_cuda_home({"PATH": str(wrapper_dir)}, search=())
    assert root == str(real.resolve()) and str(wrapper_dir / "nvcc") in how


def test_usual_folders_newest_first(setup_py, tmp_path):
    for version in ("12.4", "12.10", "11.8"):
        _toolkit(tmp_path / f"cuda-{version}")
    (tmp_path / "cuda-13.1").mkdir()  # an empty leftover is not a toolkit
    root, _ = setup_py.find_cuda_home({"PATH": ""}, search=(str(tmp_path / "cuda"), str(tmp_path / "cuda-*")))
    assert root == str((tmp_path / "cuda-12.10").resolve())
    (tmp_path / "cuda").symlink_to(tmp_path / "cuda-11.8")  # /usr/local/cuda, where it exists, comes first
    root, _ = setup_py.find_cuda_home({"PATH": ""}, search=(str(tmp_path / "cuda"), str(tmp_path / "cuda-*")))
    assert root == str((tmp_path / "cuda-11.8").resolve())
    assert setup_py.find_cuda_home({"PATH": ""}, search=(str(tmp_path / "none-*"),))[0] is None


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc on PATH on this machine")
def test_finds_this_machines_toolkit(setup_py):
    root, how = setup_py.find_cuda_home({"PATH": os.environ["PATH"]})
    assert root is not None and setup_py.is_toolkit(root), (root, how)


# ---------------------------------------------------------------------------------------------------------------
# skipping and forcing


def test_skip_reasons_and_force(setup_py, monkeypatch, tmp_path):
    monkeypatch.setenv("FASTSAC_SKIP_CUDA", "1")
    assert setup_py.cuda_extension() is None and setup_py._skip_reason == "FASTSAC_SKIP_CUDA=1"
    monkeypatch.delenv("FASTSAC_SKIP_CUDA")
    monkeypatch.setattr(torch.version, "cuda", None)
    assert setup_py.cuda_extension() is None and "has no CUDA" in setup_py._skip_reason
    monkeypatch.setenv("FASTSAC_FORCE_CUDA", "1")
    with pytest.raises(RuntimeError, match="FASTSAC_FORCE_CUDA=1 but .* has no CUDA"):
        setup_py.cuda_extension()
    monkeypatch.delenv("FASTSAC_FORCE_CUDA")
    # As with a CUDA build of torch: a wrong CUDA_HOME, a toolkit of another CUDA major version.
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "not-a-toolkit"))
    assert setup_py.cuda_extension() is None
    assert "CUDA_HOME=" in setup_py._skip_reason and "is not a CUDA toolkit root" in setup_py._skip_reason
    monkeypatch.setenv("CUDA_HOME", str(_toolkit(tmp_path / "cuda-11.8", release="11.8")))
    assert setup_py.cuda_extension() is None and "is CUDA 11.8 but torch was built with CUDA 13.0" in \
        setup_py._skip_reason
    monkeypatch.setenv("FASTSAC_FORCE_CUDA", "1")
    with pytest.raises(RuntimeError, match="CUDA 11.8"):
        setup_py.cuda_extension()


_BROKEN_SOURCES = {"compile": "int fastsac_broken( {\n", "link": "int fastsac_needs_a_missing_library() { return 1; }\n"}


@pytest.mark.parametrize("stage", ["compile", "link"])
def test_failed_build_leaves_the_install_without_it(setup_py, tmp_path, capfd, monkeypatch, stage):
    """A real compile (syntax error) or link (missing library) failure inside torch's BuildExtension: the build
    goes on without the extension, prints one line saying why, keeps it as the package's note; FORCE raises."""
    from setuptools import Distribution
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    (tmp_path / "broken.cpp").write_text(_BROKEN_SOURCES[stage])
    libraries = ["fastsac_no_such_library"] if stage == "link" else []

    def build(force: bool):
        if force:
            monkeypatch.setenv("FASTSAC_FORCE_CUDA", "1")
        ext = CppExtension("fastsac_broken", [str(tmp_path / "broken.cpp")], libraries=libraries)
        cmd_cls = setup_py._optional_build_ext(BuildExtension, "/wrong/cuda", "CUDA_HOME")
        dist = Distribution({"name": "broken", "ext_modules": [ext], "cmdclass": {"build_ext": cmd_cls}})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib, cmd.build_temp = str(tmp_path / "lib"), str(tmp_path / f"temp-{force}")
        dist.run_command("build_ext")
        return cmd

    cmd = build(force=False)
    ours = [line for line in capfd.readouterr().err.splitlines() if line.startswith("fastsac:")]
    assert len(ours) == 1, ours
    assert ours[0].startswith(f"fastsac: the CUDA extension fastsac._C failed to build ({stage} step")
    assert "CUDA_HOME" in ours[0] and "/wrong/cuda" in ours[0] and "FASTSAC_FORCE_CUDA=1" in ours[0]
    assert cmd.get_outputs() == [] and not list((tmp_path / "lib").glob("fastsac_broken*"))
    assert (tmp_path / "lib" / "fastsac" / setup_py.NOTE_FILE).read_text().strip() == ours[0]
    with pytest.raises(Exception):
        build(force=True)


def test_without_cuda_the_cpu_only_extension_is_built_with_the_shared_flags(setup_py, monkeypatch):
    """Where the CUDA build is skipped, fastsac._C is built from the .cpp sources alone (the CPU kernels), with the
    flags of fastsac/ops/cpu_build_flags.py; its note says why CUDA is absent. FASTSAC_SKIP_EXTENSION=1: nothing."""
    from fastsac.ops import cpu_build_flags

    monkeypatch.setenv("FASTSAC_SKIP_CUDA", "1")
    assert setup_py.cuda_extension() is None
    (ext,), cmdclass = setup_py.cpu_extension()
    assert ext.name == "fastsac._C" and ext.sources and all(src.endswith(".cpp") for src in ext.sources)
    assert "csrc/bindings.cpp" in ext.sources and not any(src.endswith(".cu") for src in ext.sources)
    assert ext.extra_compile_args["cxx"] == cpu_build_flags.cxx_flags()
    assert setup_py._skip_reason is None  # the build says it (start line, then the note it keeps)
    assert "build_ext" in cmdclass
    monkeypatch.setenv("FASTSAC_SKIP_EXTENSION", "1")
    assert setup_py.cpu_extension() is None and setup_py._skip_reason == "FASTSAC_SKIP_EXTENSION=1"


def test_a_failed_cpu_only_build_leaves_the_reference_and_one_line(setup_py, tmp_path, capfd):
    from setuptools import Distribution
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    (tmp_path / "broken.cpp").write_text(_BROKEN_SOURCES["compile"])
    ext = CppExtension("fastsac_broken", [str(tmp_path / "broken.cpp")])
    cmd_cls = setup_py._optional_build_ext(BuildExtension, "", "", cpu_only=True, built_note="unused")
    dist = Distribution({"name": "broken", "ext_modules": [ext], "cmdclass": {"build_ext": cmd_cls}})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib, cmd.build_temp = str(tmp_path / "lib"), str(tmp_path / "temp")
    dist.run_command("build_ext")
    ours = [line for line in capfd.readouterr().err.splitlines() if line.startswith("fastsac:")]
    assert len(ours) == 1 and ours[0].startswith("fastsac: the CPU-only extension fastsac._C failed to build "
                                                 "(compile step"), ours
    assert "run the torch reference" in ours[0]
    assert (tmp_path / "lib" / "fastsac" / setup_py.NOTE_FILE).read_text().strip() == ours[0]


def test_the_note_reaches_the_extension_loader(monkeypatch, tmp_path):
    from fastsac.ops import extension

    note = tmp_path / "_build_note.txt"
    monkeypatch.setattr(extension, "_BUILD_NOTE", note)
    assert extension.build_note() is None
    note.write_text("fastsac: building without the CUDA extension (torch 2.13.0+cpu has no CUDA; ...)\n")
    assert "has no CUDA" in extension.build_note()
    if extension._import_compiled() is None and extension._jit is None:
        with pytest.raises(ImportError, match="has no CUDA"):
            extension.load()


# ---------------------------------------------------------------------------------------------------------------
# the install this suite runs against


def test_the_extension_the_set_up_builds_is_installed():
    """scripts/setup.sh (``pip install --no-build-isolation -e ".[test]"``) builds fastsac._C; without it the suite
    would test the fallbacks alone and pass, so its absence fails here, with setup.py's note saying why. Only
    ``FASTSAC_SKIP_EXTENSION=1``, which skips the build by design, runs the suite without it."""
    from fastsac.ops import extension

    if os.environ.get("FASTSAC_SKIP_EXTENSION") == "1":
        pytest.skip("FASTSAC_SKIP_EXTENSION=1: the set-up skips building fastsac._C by design")
    try:
        importlib.import_module("fastsac._C")
        error = None
    except ImportError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:  # failed outside the except block: one message, without the ImportError's traceback
        note = extension.build_note() or "setup.py left no note: was fastsac installed by scripts/setup.sh?"
        pytest.fail(
            f"fastsac._C cannot be imported ({error}); setup.py's build note: {note}. Fix: rerun scripts/setup.sh, "
            "or pip install --no-build-isolation -e . (FASTSAC_SKIP_EXTENSION=1 runs the tests without the "
            "extension on purpose)",
            pytrace=False,
        )


# ---------------------------------------------------------------------------------------------------------------
# pip, with a CUDA build of torch


def _copy_checkout(dest: Path) -> Path:
    """The sources without build outputs (this checkout may itself be a copy, without .git)."""
    ignore = shutil.ignore_patterns(".git", "__pycache__", "build", "dist", "*.egg-info", "*.so", "_build_note.txt",
                                    "runs", ".pytest_cache", ".benchmarks", "gpu_out")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _pip_wheel(src: Path, out: Path, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "FASTSAC_FORCE_CUDA")}
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps",
                           "--disable-pip-version-check", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=900, env={**full, **env})


@pytest.mark.skipif(torch.version.cuda is None, reason="needs a CUDA build of torch (scripts/check_cuda_build.sh)")
def test_wrong_toolkit_install_succeeds_with_the_line_and_force_fails(tmp_path):
    src = _copy_checkout(tmp_path / "src")
    # 1. A folder with a wrapper nvcc and no libraries (CUDA_HOME=/usr/local, say): skipped before building.
    wrapper_home = tmp_path / "usr_local"
    _script(wrapper_home / "bin" / "nvcc", 'exec nvcc "$@"')
    res = _pip_wheel(src, tmp_path / "w1", CUDA_HOME=str(wrapper_home))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"CUDA_HOME={wrapper_home} is not a CUDA toolkit root" in res.stdout + res.stderr
    res = _pip_wheel(src, tmp_path / "w2", CUDA_HOME=str(wrapper_home), FASTSAC_FORCE_CUDA="1")
    assert res.returncode != 0 and "FASTSAC_FORCE_CUDA=1 but the CUDA extension cannot be built" in \
        res.stdout + res.stderr
    # 2. A toolkit whose nvcc fails: the build is tried, fails, and the wheel is made without fastsac._C.
    broken = tmp_path / "broken_cuda"
    _toolkit(broken)
    _script(broken / "bin" / "nvcc", 'echo "nvcc: this toolkit is broken on purpose" >&2; exit 1')
    res = _pip_wheel(src, tmp_path / "w3", CUDA_HOME=str(broken))
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line.strip() for line in (res.stdout + res.stderr).splitlines()
             if "fastsac: the CUDA extension fastsac._C failed to build" in line]
    assert len(lines) == 1, lines
    (wheel,) = (tmp_path / "w3").glob("fastsac-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith("fastsac/_C") for n in names)
    assert zipfile.ZipFile(wheel).read("fastsac/_build_note.txt").decode().strip() == lines[0]
