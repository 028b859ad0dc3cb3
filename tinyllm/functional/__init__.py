"""Fused ops with closed-form backward: one graph node where a composition of
primitives would make many. Fewer nodes means less Python overhead, fewer
temporaries and better numerics (e.g. log-softmax never forms ``log(0)``).

On the GPU (CuPy, float32/float64) each op calls its fused CUDA kernel from
``tinyllm.cuda_kernels``; the NumPy code here is the reference it is tested against.

- ``softmax.py``: softmax, log_softmax, logsumexp, cross_entropy
- ``layers.py``: gelu, layer_norm, embedding, dropout
- ``attention.py``: attention (and the causal mask)
"""
from .attention import Attention, attention, causal_bias
from .layers import (GELU_C, SQRT_2_OVER_PI, Dropout, Embedding, Gelu, LayerNorm, _uniform_dtype, dropout,
                     embedding, gelu, layer_norm)
from .softmax import CrossEntropy, LogSoftmax, LogSumExp, Softmax, cross_entropy, log_softmax, logsumexp, softmax

__all__ = ["Attention", "CrossEntropy", "Dropout", "Embedding", "Gelu", "LayerNorm", "LogSoftmax", "LogSumExp",
           "Softmax", "attention", "causal_bias", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm",
           "log_softmax", "logsumexp", "softmax", "GELU_C", "SQRT_2_OVER_PI", "_uniform_dtype"]

# PyTorch's activations and losses (their own modules); ``gelu`` and ``cross_entropy`` from
# there dispatch on ``approximate=`` and on probability targets, and fall back to the ops above.
from . import activations, losses  # noqa: E402
from .activations import *  # noqa: E402,F401,F403
from .losses import *  # noqa: E402,F401,F403

__all__ += [n for n in activations.__all__ + losses.__all__ if n not in __all__]
