"""Shared test settings.

Hypothesis profiles: "ci" (the default; small, so the whole suite runs in a
few minutes on 2 cores) and "thorough" (many more examples, for study or
before a release): ``HYPOTHESIS_PROFILE=thorough pytest``.
"""
import functools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import numpy as np
import tinyllm
from tinyllm import backend

BACKEND = os.environ.get("TINYLLM_BACKEND", "numpy").lower()   # TINYLLM_BACKEND=cupy runs the suite on the GPU

if BACKEND == "cupy":
    # Tests compare results with NumPy's assertions, on the host: hand them host copies.
    def _host(a):
        a = a.data if isinstance(a, tinyllm.Tensor) else a
        return backend.to_numpy(a) if backend.is_cupy_array(a) else a

    def _on_host(check):
        @functools.wraps(check)
        def wrapper(*args, **kwargs):
            return check(*(_host(a) for a in args), **kwargs)
        return wrapper

    for _name in ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal",
                  "assert_array_less"):
        setattr(np.testing, _name, _on_host(getattr(np.testing, _name)))

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def shakespeare_path() -> Path:
    """The Tiny Shakespeare corpus beside the checkout, or skip."""
    if not SHAKESPEARE.exists():
        pytest.skip("tinyshakespeare.txt not found beside the checkout")
    return SHAKESPEARE


@pytest.fixture(autouse=True)
def _fresh_engine_state():
    """Each test starts from float32, a fixed seed, grad mode on, and the backend of the run."""
    tinyllm.set_backend(BACKEND)
    tinyllm.set_default_dtype("float32")
    tinyllm.manual_seed(0)
    yield
    tinyllm.set_default_dtype("float32")
