"""backend.small_matmul: the same product as ``@``, on one BLAS thread, the thread count restored."""
import numpy as np

from tinyllm import backend


def test_small_matmul_equals_matmul_and_restores_the_thread_count():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    b = rng.standard_normal((3, 2, 4, 6)).astype(np.float32)
    before = backend._BLAS_THREADS[0]() if backend._BLAS_THREADS else None
    np.testing.assert_array_equal(backend.small_matmul(a, b), a @ b)
    np.testing.assert_array_equal(backend.small_matmul(a[0, 0], b[0, 0].T.T), a[0, 0] @ b[0, 0])
    if before is not None:
        assert backend._BLAS_THREADS[0]() == before
