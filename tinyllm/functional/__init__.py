"""Fused ops: each is ONE graph node with a closed-form backward, where a
composition of primitives (``tinyllm.ops``) would make many. Fewer nodes
means less Python overhead, fewer temporaries and better numerics (e.g.
log-softmax never forms ``log(0)``).

Each op module shows the formula first: the op class's docstring states the
math of forward and backward, and a ``...Reference`` class computes it in a
few lines of array code that run on NumPy and CuPy alike. The reference is
what float64 runs (the gradient checks), what the kernels are tested
against, and what runs wherever no kernel applies. In its forward the op
asks ``tinyllm.kernels.select`` once for an implementation (a CUDA kernel
for CuPy arrays, a compiled CPU loop for float32 NumPy arrays, else the
reference), keeps it on the node, and its backward asks that same object.

- ``gelu.py``, ``layer_norm.py``, ``embedding.py``, ``dropout.py``, ``linear.py``
- ``softmax.py``: softmax, log_softmax, logsumexp; ``cross_entropy.py``
- ``attention.py``: attention (and the causal mask); ``self_attention.py``:
  multi-head self-attention of packed q|k|v
"""
from .attention import Attention, attention, causal_bias
from .cross_entropy import CrossEntropy, cross_entropy
from .dropout import Dropout, _uniform_dtype, dropout
from .embedding import Embedding, embedding
from .gelu import GELU_C, SQRT_2_OVER_PI, Gelu, gelu
from .layer_norm import LayerNorm, layer_norm
from .linear import LinearFunction, linear
from .self_attention import SelfAttentionFunction, self_attention
from .softmax import LogSoftmax, LogSumExp, Softmax, log_softmax, logsumexp, softmax

__all__ = ["Attention", "CrossEntropy", "Dropout", "Embedding", "Gelu", "LayerNorm", "LinearFunction",
           "LogSoftmax", "LogSumExp", "SelfAttentionFunction", "Softmax", "attention", "causal_bias",
           "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax", "logsumexp",
           "self_attention", "softmax", "GELU_C", "SQRT_2_OVER_PI", "_uniform_dtype"]
