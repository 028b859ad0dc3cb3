"""Which test checks the gradient of which op: the registry behind the meta-test.

Every differentiable :class:`tinyllm.Function` subclass is recorded in
``tinyllm.tensor.OP_REGISTRY`` by class name when it is defined.
``tests/test_op_registry.py`` fails if any of those defined inside the
``tinyllm`` package has no gradient test registered here, so no op can be added
without one.

How to add a case for a new op ``MyOp`` (a Function subclass):

1. Engine ops (``tinyllm/ops``, ``tinyllm/functional/``): add a
   :class:`~op_cases.Case` to ``CASES`` in ``tests/op_cases.py``; the table's
   tests check it against finite differences, NumPy and PyTorch.
2. Anywhere else (e.g. a Function inside ``tinyllm/nn``): write a test that
   runs ``tinyllm.gradcheck`` on it and mark that test::

       from gradcases import grad_case

       @grad_case("MyOp")
       def test_my_op_gradient():
           gradcheck(lambda x: my_op(x), tinyllm.tensor(x64, requires_grad=True))

   The meta-test imports every ``tests/test_*.py`` module, so the mark is seen
   wherever the test lives.
"""
from __future__ import annotations

from typing import Callable

GRAD_CASES: dict[str, list[str]] = {}  # Function class name -> tests that gradcheck it


def grad_case(*op_names: str) -> Callable:
    """Decorator: record the decorated test as a gradient check of the named Function classes."""
    if not op_names:
        raise ValueError("grad_case needs at least one Function class name")

    def mark(test: Callable) -> Callable:
        if not test.__name__.startswith("test"):
            raise ValueError(f"grad_case marks tests, and {test.__name__} is not collected by pytest")
        for name in op_names:
            GRAD_CASES.setdefault(name, []).append(f"{test.__module__}.{test.__name__}")
        return test

    return mark


# ----------------------------------------------------------------------------- the public surface

SURFACE_CASES: dict[str, list[str]] = {}  # public name ("tinyllm.x", "F.x", "Tensor.x") -> tests that gradcheck it


def surface_case(*public_names: str) -> Callable:
    """Decorator: record the decorated test as a gradient check of the named public functions
    (for those no case of ``op_cases.CASES`` runs, e.g. losses checked in their own tests)."""
    def mark(test: Callable) -> Callable:
        for name in public_names:
            SURFACE_CASES.setdefault(name, []).append(f"{test.__module__}.{test.__name__}")
        return test

    return mark
