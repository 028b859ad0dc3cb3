"""Shared test settings.

Hypothesis profiles: "ci" (the default; small, so the whole suite runs in a
few minutes on 2 cores) and "thorough" (many more examples, for study or
before a release): ``HYPOTHESIS_PROFILE=thorough pytest``.
"""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import tinyllm

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
    """Each test starts from float32, a fixed seed, and grad mode on."""
    tinyllm.set_default_dtype("float32")
    tinyllm.manual_seed(0)
    yield
    tinyllm.set_default_dtype("float32")
