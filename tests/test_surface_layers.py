"""The bottom layers import downward only (every import statement, module- or function-level):
tensor.py and tensor_methods.py use the backend alone, ops/ uses tensor and the backend, and
nn/init.py does not know the layers it initialises."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinyllm"


def _imports(path: Path) -> set:
    """Absolute names of the tinyllm modules ``path`` imports (relative imports resolved)."""
    parts = ["tinyllm"] + list(path.relative_to(PACKAGE).with_suffix("").parts)
    here = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("tinyllm"):
                continue
            if node.module:
                out.add(mod)
            else:                                               # from .. import backend: the module is named
                out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("tinyllm"))
    return out


def _allowed(name: str, prefixes: tuple) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path, allowed", [
    ("tensor.py", ("tinyllm.backend", "tinyllm.tensor_methods")),
    ("tensor_methods.py", ("tinyllm.backend", "tinyllm.tensor")),          # tensor: type annotations only
    *[(f"ops/{p.name}", ("tinyllm.backend", "tinyllm.tensor", "tinyllm.ops")) for p in sorted((PACKAGE / "ops")
                                                                                            .glob("*.py"))],
    ("nn/init.py", ("tinyllm.backend", "tinyllm.tensor")),
])
def test_layer_imports_point_down(path, allowed) -> None:
    upward = sorted(n for n in _imports(PACKAGE / path) if not _allowed(n, allowed))
    assert not upward, f"{path} imports {upward}"
