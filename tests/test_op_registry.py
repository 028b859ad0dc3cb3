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
from gradcases import GRAD_CASES
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
