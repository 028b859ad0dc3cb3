"""The backend switch, scatter-add, seeded randomness and default dtypes."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinyllm
from tinyllm import backend
from tinyllm.backend import BackendError, scatter_add

HAS_CUPY = importlib.util.find_spec("cupy") is not None
EXTRA_HINT = "pip install 'tinyllm[cuda12]'"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


# ----------------------------------------------------------------------------- choosing a backend

@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here: the missing-CuPy error cannot be seen")
def test_env_var_asking_for_cupy_without_it_names_the_extra_to_install() -> None:
    proc = _python("import tinyllm", TINYLLM_BACKEND="cupy")
    assert proc.returncode != 0
    assert "BackendError" in proc.stderr and EXTRA_HINT in proc.stderr


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here: the missing-CuPy error cannot be seen")
def test_set_backend_cupy_without_it_names_the_extra_and_keeps_numpy() -> None:
    with pytest.raises(BackendError, match=r"CuPy is not importable.*" + EXTRA_HINT.replace("[", r"\[")):
        tinyllm.set_backend("cupy")
    assert tinyllm.get_backend() == "numpy" and backend.xp() is np
    with pytest.raises(BackendError, match="tinyllm"):
        tinyllm.tensor([1.0]).to("cupy")


class _FakeCupy(types.ModuleType):
    """Stands in for an installed CuPy on a machine whose CUDA sees ``devices`` GPUs."""

    def __init__(self, devices: int | None) -> None:
        super().__init__("cupy")

        def count() -> int:
            if devices is None:
                raise RuntimeError("cudaErrorInsufficientDriver")
            return devices

        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))


@pytest.mark.parametrize("devices, error", [(0, "no CUDA GPU is visible"), (None, "no usable CUDA GPU")])
def test_cupy_without_a_gpu_names_the_extra(monkeypatch, devices, error) -> None:
    before = tinyllm.get_backend()
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy(devices))
    monkeypatch.setattr(backend, "_cupy", None)
    with pytest.raises(BackendError, match=error + r".*" + EXTRA_HINT.replace("[", r"\[")):
        tinyllm.set_backend("cupy")
    assert tinyllm.get_backend() == before and backend._cupy is None   # the backend in use is kept


def test_numpy_backend_by_name_and_by_env_var() -> None:
    tinyllm.set_backend("NumPy")
    assert tinyllm.get_backend() == "numpy" and backend.xp() is np
    code = "import tinyllm; print(tinyllm.get_backend(), type(tinyllm.tensor([1.0]).data).__module__)"
    proc = _python(code, TINYLLM_BACKEND="numpy")
    assert proc.returncode == 0 and proc.stdout.split() == ["numpy", "numpy"]


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(BackendError, match="unknown backend 'jax': choose 'numpy' or 'cupy'"):
        tinyllm.set_backend("jax")
    proc = _python("import tinyllm", TINYLLM_BACKEND="jax")
    assert proc.returncode != 0 and "unknown backend 'jax'" in proc.stderr


def test_array_helpers_on_the_cpu() -> None:
    a = np.arange(3.0)
    assert backend.get_array_module(a) is np and not backend.is_cupy_array(a)
    assert backend.to_numpy(a) is a
    assert backend.asarray([1, 2], dtype=np.float32).dtype == np.float32
    backend.synchronize()                                    # a no-op on the CPU


# ----------------------------------------------------------------------------- scatter-add

def _reference(shape, index, values):
    out = np.zeros(shape, dtype=values.dtype)
    np.add.at(out, index, values)
    return out


@pytest.mark.parametrize("rows, n, width", [
    (7, 50, 3),           # rows * n small: the one-hot matmul path
    (5000, 1000, 2),      # rows * n > 4M: the sort + reduceat path
], ids=["one_hot", "sort_reduceat"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_matches_add_at_on_both_paths(rows, n, width, dtype) -> None:
    rng = np.random.default_rng(0)
    index = rng.integers(-rows, rows, size=n)
    index[:4] = [3, 3, rows - 1, -1]                         # duplicates, and -1 == rows - 1
    values = rng.standard_normal((n, width)).astype(dtype)
    out = scatter_add((rows, width), index, values)
    assert out.dtype == dtype and out.shape == (rows, width)
    np.testing.assert_allclose(out, _reference((rows, width), index, values), rtol=1e-5, atol=1e-5)


def test_scatter_add_with_a_multi_dimensional_index_and_trailing_axes() -> None:
    rng = np.random.default_rng(1)
    index = rng.integers(0, 4, size=(3, 5))                  # e.g. (B, T) token ids
    values = rng.standard_normal((3, 5, 2, 2))
    out = scatter_add((4, 2, 2), index, values)
    np.testing.assert_allclose(out, _reference((4, 2, 2), index, values), rtol=1e-12)
    empty = scatter_add((4, 2), np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
    np.testing.assert_array_equal(empty, np.zeros((4, 2)))


@given(data=st.data())
def test_scatter_add_property(data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 6))
    index = data.draw(hnp.arrays(np.int64, st.integers(0, 12), elements=st.integers(-rows, rows - 1)))
    width = data.draw(st.integers(1, 3))
    values = data.draw(hnp.arrays(np.float64, (len(index), width), elements=st.floats(-10, 10)))
    np.testing.assert_allclose(scatter_add((rows, width), index, values),
                               _reference((rows, width), index, values), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- randomness

def test_manual_seed_makes_every_draw_reproducible() -> None:
    tinyllm.manual_seed(123)
    a = backend.rng().random(5)
    x = tinyllm.tensor(np.ones((4, 4)))
    mask_a = tinyllm.functional.dropout(x, 0.5).numpy()
    tinyllm.manual_seed(123)
    b = backend.rng().random(5)
    mask_b = tinyllm.functional.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mask_a, mask_b)
    tinyllm.manual_seed(124)
    assert not np.array_equal(backend.to_numpy(backend.rng().random(5)), backend.to_numpy(a))
    assert backend.rng(backend.xp()) is backend.rng()        # one generator per backend


def test_rng_state_round_trips_through_json() -> None:
    tinyllm.manual_seed(9)
    backend.rng().random(3)                                  # move away from the seed's start
    state = json.loads(json.dumps(backend.get_rng_state()))  # plain data, as a checkpoint stores it
    expected = backend.rng().random(4)
    tinyllm.manual_seed(1000)                                # anything in between
    backend.rng().random(7)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(backend.rng().random(4), expected)


# ----------------------------------------------------------------------------- default dtype

def test_default_dtype_applies_to_python_floats_only() -> None:
    tinyllm.set_default_dtype("float64")
    assert tinyllm.get_default_dtype() == np.float64
    assert tinyllm.tensor([1.0]).dtype == np.float64
    assert tinyllm.tensor(np.ones(2, dtype=np.float32)).dtype == np.float32   # arrays keep theirs
    assert tinyllm.tensor([1, 2]).dtype.kind == "i"
    tinyllm.set_default_dtype(np.float32)
    assert tinyllm.tensor(1.5).dtype == np.float32
    with pytest.raises(ValueError, match="floating type"):
        tinyllm.set_default_dtype("int32")


# ----------------------------------------------------------------------------- OpenBLAS's idle threads

def _without_timeout(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    return {**base, **env}


def _probe(code: str, env: dict) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


NUMPY_FIRST = ("import os, numpy as np; np.ones((64, 64)) @ np.ones((64, 64)); import tinyllm; "
               "from tinyllm.kernels.cpu import platform; "
               "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), platform.reread_openblas_timeout())")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_numpy_imported_first_still_gets_the_thread_timeout() -> None:
    """A script that loads NumPy (and OpenBLAS) before tinyllm gets the same BLAS setting as one that does not."""
    timeout, applied = _probe(NUMPY_FIRST, _without_timeout())
    assert timeout == "4" and applied == "True"


def test_a_timeout_the_user_set_is_left_alone() -> None:
    timeout, applied = _probe(NUMPY_FIRST, _without_timeout(OPENBLAS_THREAD_TIMEOUT="28"))
    assert timeout == "28" and applied == "False"
    timeout, = _probe("import os, tinyllm; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))",
                      _without_timeout(OPENBLAS_THREAD_TIMEOUT="28"))
    assert timeout == "28"
