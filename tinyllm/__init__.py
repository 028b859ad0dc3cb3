"""tinyllm: a small, readable deep-learning engine for language models.

Tensors live on NumPy (CPU) or CuPy (GPU); reverse-mode autograd is written
here (``tinyllm.tensor``); the primitive ops are in ``tinyllm.ops`` and the
fused ones in ``tinyllm.functional``.

Importing tinyllm sets ``OPENBLAS_THREAD_TIMEOUT=4`` unless it is already set.
After each matmul OpenBLAS's worker threads otherwise spin for 2^28 cycles
(a tenth of a second) waiting for the next one, and on a machine with few
cores that spinning takes the core our own threads need for the elementwise
work between matmuls (``tinyllm.kernels.cpu.threads``). With 4 they go to sleep
after 2^4 cycles. OpenBLAS reads the variable when NumPy loads it; when the
script imported NumPy first, tinyllm has OpenBLAS read it again
(``tinyllm.kernels.cpu.platform.reread_openblas_timeout``). To keep
OpenBLAS's default, set ``OPENBLAS_THREAD_TIMEOUT=28`` yourself.
"""
import os
import sys

_NUMPY_FIRST = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
if "numpy" not in sys.modules:                  # OpenBLAS reads it when NumPy loads it
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import backend, functional, ops, tensor as _tensor
from .backend import (get_backend, get_default_dtype, manual_seed, set_backend, set_default_dtype,
                      synchronize)
from .gradcheck import GradcheckError, check_gradients, gradcheck
from .ops import *  # noqa: F401,F403  (the primitive ops are the package's own names: tinyllm.exp, ...)
from .ops import max, min, pow, sum  # noqa: A004  (shadow builtins only inside this namespace)
from .functional import log_softmax, logsumexp, softmax
from .functional.activations import gelu
from .tensor import (Function, Tensor, as_tensor, enable_grad, inference_mode, is_grad_enabled, no_grad,
                     set_grad_enabled, tensor)
from numpy import (bool_ as bool, float16, float32, float64, int8, int16, int32, int64,  # noqa: A004, E402
                   uint8)   # dtype names as PyTorch spells them: tinyllm.float32 is NumPy's float32

_tensor.bind_math(ops, functional)   # Tensor's operators and methods, from the layers above it

if _NUMPY_FIRST:                                # the script loaded NumPy (and OpenBLAS) before us
    from .kernels.cpu.platform import reread_openblas_timeout
    reread_openblas_timeout()

__version__ = "0.1.0"
