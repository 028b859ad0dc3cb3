"""The package's layers: imports point down only, and no module imports itself in a circle.

``tinyllm`` is built in layers (README, "A tour for readers"; ``shared/DESIGN.md``)::

    cli > train > distributed > generate, compress > models > optim, data, checkpoint, ...
        > nn > functional > ops > tensor > kernels > backend

This test reads every module's source with ``ast`` (nothing is imported), so a
violation is found even in a branch that no test executes. Imports inside
functions count for the direction (a lazy import is still a dependency); for
cycles only module-level imports count, since those are what Python runs at
import time (an import on use is how a lower layer may *call up* by design:
none is allowed in the layers below ``nn``).
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tinyllm"

# rank of each top-level part of the package: a module may import only parts of lower or equal rank
RANKS = {
    "backend": 0,
    "kernels": 1,
    "tensor": 2, "tensor_methods": 2,
    "ops": 3,
    "functional": 4,
    "nn": 5,
    "optim": 6, "data": 6, "checkpoint": 6, "checkpoint_io": 6, "gradcheck": 6, "validate": 5,
    "models": 7, "gradcheck_cases": 11, "gradcheck_surface": 11,
    "generate": 8, "decoding": 8, "compress": 8,
    "distributed": 9,
    "train": 10,
    "cli": 11,
    "__init__": 12, "__main__": 12,
}
LOW = ("backend", "kernels", "tensor", "ops", "functional", "nn")   # may not import upwards even lazily


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported tinyllm module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    top_level = {id(n) for n in tree.body}
    for n in tree.body:   # `if TYPE_CHECKING:` blocks are not imports at run time
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n.test):
            top_level.discard(id(n))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "tinyllm":
                mod = node.module[len("tinyllm"):].lstrip(".")
            else:
                continue
            names = [f"{mod}.{a.name}".lstrip(".") for a in node.names] + [mod]
        elif isinstance(node, ast.Import):
            names = [a.name[len("tinyllm"):].lstrip(".") for a in node.names if a.name.split(".")[0] == "tinyllm"]
        for m in names:
            found.append((m, id(node) in top_level))
    return found


def _part(mod: str) -> str:
    return mod.split(".")[0] if mod else "__init__"


MODULES = _modules()


@functools.lru_cache(maxsize=2)
def _edges(module_level_only: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, top in _imports(name, path):
            if module_level_only and not top:
                continue
            while target and target not in MODULES:     # `from .x import Name` names a module or an attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_every_part_has_a_layer():
    assert {_part(m) for m in MODULES} <= set(RANKS), {_part(m) for m in MODULES} - set(RANKS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    edges = _edges(module_level_only=False)
    mine = RANKS[_part(name)]
    up = sorted(t for t in edges[name] if RANKS[_part(t)] > mine
                and (_part(name) in LOW or t in _edges(module_level_only=True)[name]))
    assert not up, f"{name} (layer {_part(name)}) imports from above: {up}"


def test_no_import_cycles():
    edges = _edges(module_level_only=True)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            # a package's __init__ importing its own submodules is not a cycle of layers
            if state.get(t) == 1 and not m.startswith(t + "."):
                cyc = stack[stack.index(t):] + [t]
                raise AssertionError("import cycle: " + " -> ".join(cyc))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
