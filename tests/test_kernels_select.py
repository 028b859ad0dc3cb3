"""kernels.select: which implementation an op runs, and that its backward asks the same one.

Also the direction of imports: ``tinyllm/kernels`` imports nothing of tinyllm but ``backend``.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.util import resolve_name
from pathlib import Path

import numpy as np
import pytest

import tinyllm
from tinyllm import functional as F
from tinyllm import kernels
from tinyllm.functional.attention import AttentionReference
from tinyllm.functional.cross_entropy import CrossEntropyReference
from tinyllm.functional.gelu import GeluReference
from tinyllm.functional.layer_norm import LayerNormReference
from tinyllm.optim.adam import AdamReference

needs_numba = pytest.mark.skipif(not kernels.cpu.enabled(), reason="needs Numba (the CPU kernels are off)")


def _ops(dtype):
    """(op, its output's graph node) for each fused op with a CPU kernel, on arrays of ``dtype``."""
    rng = np.random.default_rng(0)
    x = tinyllm.tensor(rng.standard_normal((4, 8)).astype(dtype), requires_grad=True)
    w = tinyllm.tensor(np.ones(8, dtype=dtype), requires_grad=True)
    q = tinyllm.tensor(rng.standard_normal((2, 3, 8)).astype(dtype), requires_grad=True)
    return {"gelu": F.gelu(x, approximate="tanh"), "layer_norm": F.layer_norm(x, w, w),
            "cross_entropy": F.cross_entropy(x, np.arange(4)), "attention": F.attention(q, q, q, causal=True)}


def test_float64_takes_the_reference() -> None:
    refs = {"gelu": GeluReference, "layer_norm": LayerNormReference, "cross_entropy": CrossEntropyReference,
            "attention": AttentionReference}
    for op, y in _ops(np.float64).items():
        assert type(y._ctx.impl) is refs[op], op
    a = np.zeros(5)
    assert type(kernels.select("adam", a, a, a, a, reference=AdamReference)) is AdamReference


@needs_numba
def test_float32_numpy_takes_the_compiled_kernels() -> None:
    for op, y in _ops(np.float32).items():
        assert type(y._ctx.impl).__module__ == f"tinyllm.kernels.cpu.{op}", op
    a = np.zeros(5, dtype=np.float32)
    assert type(kernels.select("adam", a, a, a, a, reference=AdamReference)).__module__ == "tinyllm.kernels.cpu.adam"
    assert type(kernels.select("adam", a, a, a, None, reference=AdamReference)).__module__ \
        == "tinyllm.kernels.cpu.adam"                                    # None entries are ignored
    assert type(kernels.select("adam", a, a, a, a.astype(np.float16), reference=AdamReference)) is AdamReference


def test_the_environment_turns_the_kernels_off() -> None:
    code = ("import numpy as np, tinyllm\n"
            "from tinyllm import functional as F, kernels\n"
            "x = tinyllm.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)\n"
            "print(kernels.cpu.enabled(), type(F.layer_norm(x)._ctx.impl).__name__,"
            " type(F.gelu(x, approximate='tanh')._ctx.impl).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TINYLLM_CPU_KERNELS": "0"}).stdout.split()
    assert out == ["False", "LayerNormReference", "GeluReference"]


@needs_numba
def test_backward_asks_the_implementation_that_forward_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    x = tinyllm.tensor(np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32), requires_grad=True)
    y = F.layer_norm(F.gelu(x, approximate="tanh"))
    chosen = {id(node.impl): node.impl for node in (y._ctx, y._ctx.inputs[0]._ctx)}
    calls = []
    for impl in chosen.values():
        original = impl.backward
        impl.backward = lambda *a, _f=original, _i=impl: (calls.append(type(_i).__name__), _f(*a))[1]
    monkeypatch.setenv("TINYLLM_CPU_KERNELS", "0")                     # too late: forward chose already
    y.backward(np.ones((4, 8), dtype=np.float32))
    assert calls == ["LayerNorm", "Gelu"]
    monkeypatch.delenv("TINYLLM_CPU_KERNELS")
    ref = F.layer_norm(F.gelu(tinyllm.tensor(x.data), approximate="tanh"))
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-6)


def test_select_names_the_ops_it_knows() -> None:
    with pytest.raises(KeyError, match="no kernels are registered for 'conv'"):
        kernels.select("conv", np.zeros(3), reference=GeluReference)


def test_kernels_import_nothing_of_tinyllm_but_backend() -> None:
    root = Path(kernels.__file__).parent
    for path in root.rglob("*.py"):
        package = ".".join(("tinyllm",) + path.relative_to(root.parent).parent.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = resolve_name("." * node.level + (node.module or ""), package)
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "tinyllm":
                    assert name == "tinyllm.backend" or name.startswith("tinyllm.kernels"), (path.name, name)
