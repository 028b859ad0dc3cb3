"""Shared helpers of the optimizer tests: parameters and gradient sequences."""
import numpy as np

import tinyllm

SHAPES = [(3, 4), (4,), (), (2, 1, 3)]


def make_params(shapes=SHAPES, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [tinyllm.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def grad_seq(shapes=SHAPES, steps=5, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


def backward_with(params, grads):
    """Make p.grad accumulate exactly g by a backward of sum(p * g)."""
    loss = sum((p * tinyllm.tensor(g.astype(p.dtype))).sum() for p, g in zip(params, grads))
    loss.backward()
