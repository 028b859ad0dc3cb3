"""tinyllm: a small, readable deep-learning engine for language models.

Tensors live on NumPy (CPU) or CuPy (GPU); reverse-mode autograd is written
here (``tinyllm.tensor``); the primitive ops are in ``tinyllm.ops`` and the
fused ones in ``tinyllm.functional``.

Importing tinyllm sets ``OPENBLAS_THREAD_TIMEOUT=4`` unless it is already set.
After each matmul OpenBLAS's worker threads otherwise spin for 2^28 cycles
(a tenth of a second) waiting for the next one, and on a machine with few
cores that spinning takes the core our own threads need for the elementwise
work between matmuls (``tinyllm.kernels.cpu.threads``). With 4 they go to sleep
after 2^4 cycles. OpenBLAS reads the variable once, when NumPy loads it, so
this only takes effect if tinyllm is imported before NumPy; to keep
OpenBLAS's default, set ``OPENBLAS_THREAD_TIMEOUT=28`` yourself.
"""
import os
import sys

if "numpy" not in sys.modules:                  # too late otherwise: OpenBLAS has read it
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import backend, functional, ops
from .backend import (get_backend, get_default_dtype, manual_seed, set_backend, set_default_dtype,
                      synchronize)
from .gradcheck import GradcheckError, check_gradients, gradcheck
from .ops import (abs, add, argmax, broadcast_to, cast, cat, clip, concat, div, exp, expand, flatten,
                  log, masked_fill, matmul, maximum, mean, minimum, mul, neg, permute, relu, reshape,
                  sigmoid, split, sqrt, squeeze, stack, sub, swapaxes, tanh, transpose, unsqueeze,
                  var, where)
from .ops import max, min, pow, sum  # noqa: A004  (shadow builtins only inside this namespace)
from .functional import gelu, log_softmax, logsumexp, softmax
from .tensor import Function, Tensor, as_tensor, is_grad_enabled, no_grad, tensor

__version__ = "0.1.0"
