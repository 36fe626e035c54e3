"""The package layout: imports run one way between layers, no import cycle inside a package, no file over ~500
lines. Read from the source text (``ast``), so lazy imports inside functions count as well."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fastsac"
# cli -> suite -> training -> agents -> (ops, entropy, data); the three at the bottom import none of each other.
LAYERS = {"cli": 5, "suite": 4, "training": 3, "agents": 2, "ops": 1, "entropy": 1, "data": 1}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """``fastsac.*`` modules imported by the file (``from fastsac.x import y`` counts as ``fastsac.x.y`` when
    that is a module, else ``fastsac.x``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    modules = _modules()
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fastsac")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("fastsac"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_imports_run_down_the_layers():
    bad = []
    for name, path in _modules().items():
        own = _layer(name)
        if own is None:
            continue
        for target in _imports(path):
            other = _layer(target)
            if other is None or other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                bad.append(f"{name} imports {target} ({own} -> {other})")
    assert bad == [], "imports against the layer order cli -> suite -> training -> agents -> (ops, entropy, data):\n" \
        + "\n".join(bad)


def test_nothing_imports_the_cli():
    users = [name for name, path in _modules().items() if name not in ("fastsac.cli", "fastsac.__main__")
             and "fastsac.cli" in _imports(path)]
    assert users == []


def test_no_import_cycle_inside_a_package():
    modules = _modules()
    graph = {name: {t for t in _imports(path, top_level_only=True) if t in modules and t != name}
             for name, path in modules.items()}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return trail + [start]
                if nxt not in seen and nxt.startswith(start.rsplit(".", 1)[0]):
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    cycles = [c for name in graph if name.count(".") >= 2 and (c := cycle_from(name))]
    # A package's __init__ re-exports its modules, which import each other by full path: only cycles among the
    # modules themselves count.
    cycles = [c for c in cycles if not any(m.count(".") == 1 or m == "fastsac" for m in c)]
    assert cycles == []


@pytest.mark.parametrize("folder", ["fastsac", "kernels"])
def test_no_file_over_the_limit(folder):
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / folder).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"files over {MAX_LINES} lines: {long}"


def test_kernels_import_only_triton_and_torch():
    """Device code stands alone: the standard library, triton and torch (relative imports among kernels)."""
    allowed = {"triton", "torch", *sys.stdlib_module_names}
    for path in sorted((ROOT / "kernels").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
