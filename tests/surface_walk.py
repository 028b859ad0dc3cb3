"""Walk the public surface (``tinyllm.*``, ``tinyllm.functional.*``, ``Tensor`` methods) and find
which names the gradient-checked cases of ``op_cases.CASES`` run, by tracing one example of each."""
from __future__ import annotations

import inspect
import sys
import warnings

import tinyllm
import tinyllm.functional as F
from tinyllm import Tensor


def public_functions() -> dict:
    """name -> function for every public function of the engine's ops, functional layer and Tensor."""
    out = {}
    for mod, prefix in ((tinyllm, "tinyllm"), (F, "F")):
        for name in dir(mod):
            obj = getattr(mod, name)
            if not name.startswith("_") and inspect.isfunction(obj) and \
                    obj.__module__.startswith(("tinyllm.ops", "tinyllm.functional")):
                out[f"{prefix}.{name}"] = obj
    for cls in reversed(Tensor.__mro__[:-1]):              # TensorMethods, then Tensor (object left out)
        for name, obj in vars(cls).items():
            if not name.startswith("_") and inspect.isfunction(obj):
                out[f"Tensor.{name}"] = obj
    return out


def traced_by_cases(cases: dict) -> set:
    """Public names some case's expression calls (so its gradient check covers them)."""
    by_code: dict = {}
    for name, fn in public_functions().items():
        by_code.setdefault(fn.__code__, set()).add(name)
    seen: set = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in by_code:
            seen.update(by_code[frame.f_code])

    from hypothesis.errors import NonInteractiveExampleWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        for case in cases.values():
            arrays, params = case.inputs.example()
            tensors = [tinyllm.tensor(a, requires_grad=True) for a in arrays]
            sys.setprofile(profile)
            try:
                case.fn(*tensors, **params)
            finally:
                sys.setprofile(None)
    return seen
