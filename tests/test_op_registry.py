"""The meta-test: no differentiable op without a gradient test.

Every Function subclass registers itself in ``tinyllm.tensor.OP_REGISTRY``.
This test imports the whole ``tinyllm`` package (so every op is registered)
and every ``tests/test_*.py`` module (so every ``@grad_case`` mark is seen),
then fails on any op defined in ``tinyllm`` that no test checks. How to add a
case: see ``tests/gradcases.py``. Functions defined inside test files are
fixtures (e.g. a deliberately broken op), not ops, and are not required to
have one.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import tinyllm
from gradcases import GRAD_CASES, SURFACE_CASES
from tinyllm.tensor import OP_REGISTRY, Function

HOW_TO = ("add a case to CASES in tests/op_cases.py (engine ops) or mark a test that runs "
          "tinyllm.gradcheck on it with @grad_case('ClassName') from tests/gradcases.py")


def _import_everything() -> None:
    for info in pkgutil.walk_packages(tinyllm.__path__, prefix="tinyllm."):
        importlib.import_module(info.name)
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        try:
            importlib.import_module(path.stem)
        except pytest.skip.Exception:  # e.g. torch-only modules without torch
            continue


def _engine_ops() -> dict:
    _import_everything()
    return {name: cls for name, cls in OP_REGISTRY.items() if cls.__module__.split(".")[0] == "tinyllm"}


def _missing() -> list:
    return sorted(set(_engine_ops()) - set(GRAD_CASES))


def test_every_registered_op_has_a_gradient_test() -> None:
    missing = _missing()
    assert not missing, f"Function classes without a gradient test: {missing}; {HOW_TO}"


def test_a_new_op_without_a_case_is_caught() -> None:
    class Unchecked(Function):
        def forward(self, x):
            return x

        def backward(self, g):
            return (g,)

    Unchecked.__module__ = "tinyllm.ops.elementwise"   # as if it were added to the engine
    OP_REGISTRY["Unchecked"] = Unchecked
    try:
        assert "Unchecked" in _missing()
    finally:
        del OP_REGISTRY["Unchecked"]


def test_every_gradient_case_names_a_registered_op() -> None:
    ops = _engine_ops()
    unknown = {name: tests for name, tests in GRAD_CASES.items() if name not in ops}
    assert not unknown, f"gradient tests name Function classes that do not exist (renamed?): {unknown}"


def test_registered_ops_define_forward_and_backward() -> None:
    for name, cls in _engine_ops().items():
        assert cls.forward is not Function.forward and cls.backward is not Function.backward, name


def test_the_registry_holds_the_engine_ops() -> None:
    ops = _engine_ops()
    for name in ["Add", "MatMul", "Sum", "GetItem", "Softmax", "LayerNorm", "Attention", "CrossEntropy"]:
        assert name in ops
    assert "Function" not in ops


# ----------------------------------------------------------------------------- the public surface

_NO_GRADIENT = "returns booleans, integers or Python values, or makes a new leaf: nothing to differentiate"
_SPELLING = "a spelling of a checked op (the same Function runs)"

# Public names that have no gradient to check, each with why. Everything else that is public
# must be run by a case of op_cases.CASES or by a test marked @surface_case.
NOT_DIFFERENTIABLE = {
    **{f"{p}.{n}": _NO_GRADIENT for p in ("tinyllm", "Tensor") for n in [
        "all", "any", "argmax", "argmin", "argsort", "argwhere", "allclose", "bitwise_and", "bitwise_not",
        "bitwise_or", "bitwise_xor", "eq", "equal", "ge", "greater", "greater_equal", "gt", "isclose", "isfinite",
        "isinf", "isnan", "le", "less", "less_equal", "logical_and", "logical_not", "logical_or", "logical_xor",
        "lt", "ne", "not_equal", "nonzero", "floor_divide", "trunc_divide", "one_hot", "msort",
        "arange", "empty", "empty_like", "eye", "full", "full_like", "linspace", "ones", "ones_like", "rand",
        "rand_like", "randint", "randn", "randn_like", "randperm", "zeros", "zeros_like"]
       if p == "tinyllm" or hasattr(tinyllm.Tensor, n)},
    **{f"Tensor.{n}": _NO_GRADIENT for n in [
        "add_", "sub_", "mul_", "div_", "clamp_", "clip_", "copy_", "fill_", "zero_", "masked_fill_", "detach",
        "dim", "numel", "item", "tolist", "numpy", "bool", "int", "long", "new_full", "new_ones", "new_tensor",
        "new_zeros", "backward", "requires_grad_", "retain_grad", "zero_grad", "cpu", "cuda",
        "element_size", "is_contiguous", "is_floating_point", "ndimension", "nelement"]},
    **{f"tinyllm.{n}": _NO_GRADIENT for n in ["from_numpy", "is_tensor", "numel"]},
    **{f"Tensor.{n}": _SPELLING + ": Cast, case 'cast'" for n in ["float", "half"]},
    "tinyllm.transpose": _SPELLING + ": Tensor.transpose, case 'method_spellings'",
    "F.causal_bias": "a constant mask array, no tensor in or out",
}


def test_every_public_function_has_a_gradient_check_or_a_reason() -> None:
    """Walk tinyllm.*, tinyllm.functional.* and the Tensor methods: each differentiable name must be
    run by a gradient-checked case (found by tracing one example of every case) or a @surface_case test."""
    from op_cases import CASES
    from surface_walk import public_functions, traced_by_cases
    _import_everything()                                    # so every @surface_case mark is seen
    public = set(public_functions())
    covered = traced_by_cases(CASES) | set(SURFACE_CASES) | set(NOT_DIFFERENTIABLE)
    missing = sorted(public - covered)
    assert not missing, (f"public functions without a gradient check: {missing}; add a case to tests/op_cases*.py, "
                         "mark a gradcheck test with @surface_case(name), or list the name in NOT_DIFFERENTIABLE "
                         "with the reason")
    stale = sorted(set(NOT_DIFFERENTIABLE) - public)
    assert not stale, f"NOT_DIFFERENTIABLE names that are not public (renamed?): {stale}"


def test_the_surface_walk_sees_a_new_public_function() -> None:
    from surface_walk import public_functions
    tinyllm.brand_new_op = lambda x: x                      # as if it were exported from ops/
    tinyllm.brand_new_op.__module__ = "tinyllm.ops.math"
    try:
        assert "tinyllm.brand_new_op" in public_functions()
    finally:
        del tinyllm.brand_new_op
