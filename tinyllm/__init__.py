"""tinyllm: a small, readable deep-learning engine for language models.

Tensors live on NumPy (CPU) or CuPy (GPU); reverse-mode autograd is written
here (``tinyllm.tensor``); the primitive ops are in ``tinyllm.ops`` and the
fused ones in ``tinyllm.functional``.
"""
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
