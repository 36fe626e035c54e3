"""The package layout: imports run one way between layers, no import cycle anywhere in fastsac, no file over ~500
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[_module_name(path)] = path
    return out


def _import_refs(path: Path, *, top_level_only: bool = False) -> set[tuple[str, str | None]]:
    """``(module, name)`` for each ``fastsac.*`` import of the file, at any depth (inside functions too) unless
    ``top_level_only``: ``from fastsac.x import y`` gives ``("fastsac.x.y", None)`` when that is a module, else
    ``("fastsac.x", "y")``; relative imports are resolved against the file's package."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    modules = _modules()
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {(a.name, None) for a in node.names if a.name.startswith("fastsac")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - (node.level - 1)])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if not source.startswith("fastsac"):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.add((sub, None) if sub in modules else (source, alias.name))
    return found


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """``fastsac.*`` modules imported by the file (``from fastsac.x import y`` counts as ``fastsac.x.y`` when
    that is a module, else ``fastsac.x``)."""
    return {module for module, _ in _import_refs(path, top_level_only=top_level_only)}


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


def _defining_module(module: str, name: str | None, packages: set[str], depth: int = 0) -> str:
    """The module that defines what ``from module import name`` imports: a name a package's ``__init__``
    re-exports is followed to the module it comes from (``from fastsac.data import make`` -> ``fastsac.data.envs``)."""
    if name is None or module not in packages or depth > 5:
        return module
    for source, alias in _import_refs(_modules()[module], top_level_only=True):
        if alias == name or (alias is None and source.rsplit(".", 1)[-1] == name):
            return _defining_module(source, alias, packages, depth + 1)
    return module


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, at any depth: an import inside a function is a dependency as well, and
    a circle of them is one the code has to be read around. Packages' ``__init__`` files only re-export; names
    imported through them count as imports of the modules that define them, and the ``__init__`` files themselves
    are left out."""
    modules = _modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    graph = {}
    for name, path in modules.items():
        if name in packages:
            continue
        targets = {_defining_module(m, n, packages) for m, n in _import_refs(path)}
        graph[name] = {t for t in targets if t in modules and t not in packages and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each group of modules that import each other (strongly connected components,
    Tarjan), as ``[a, b, ..., a]``."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        best = None
        for start in sorted(group):  # breadth first from each member: the shortest way back to it
            trails, seen = [[start]], {start}
            while trails and (best is None or len(trails[0]) + 1 < len(best)):
                trail = trails.pop(0)
                for nxt in sorted(graph[trail[-1]] & group):
                    if nxt == start:
                        if best is None or len(trail) + 1 < len(best):
                            best = trail + [start]
                    elif nxt not in seen:
                        seen.add(nxt)
                        trails.append(trail + [nxt])
        cycles.append(best)
    return sorted(cycles)


def test_the_cycle_finder_names_a_cycle():
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x", "a.w"}, "a.w": set(), "b.p": {"b.q"}, "b.q": set()}
    assert _cycles(graph) == [["a.x", "a.y", "a.z", "a.x"]]
    assert _cycles({"a.x": {"a.y"}, "a.y": set()}) == []


def test_no_import_cycle():
    """No two modules of fastsac import each other, directly or around a circle, counting imports inside
    functions (a lazy import hides a circle from Python, not from the reader)."""
    cycles = _cycles(_import_graph())
    assert cycles == [], "import cycles (imports inside functions count):\n" + "\n".join(
        " -> ".join(c) for c in cycles
    )


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
