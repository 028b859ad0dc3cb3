"""How the CPU kernels are compiled: Numba's ``njit`` with the options every kernel shares.

Each kernel is a plain loop that states its formula element by element;
Numba compiles it to machine code once (``cache=True`` keeps the result on
disk next to the module), vectorizes the inner loops (AVX2: 8 lanes) and
releases the GIL (``nogil=True``), so :mod:`.threads` can run one call per
core on its own rows. Every array is C-contiguous float32, 2-d (rows, C) or
1-d; row statistics (mean, rstd, logsumexp) are 1-d per row.

``FAST`` lets LLVM reorder sums (so a row sum runs in 8 lanes at once) and
fuse a*b + c (one rounding instead of two); it does NOT assume away NaN or
inf, so a NaN in a row still comes out as NaN in the row's result, which is
how training notices it.
"""
from __future__ import annotations

import numba
import numpy as np

F = np.float32
FAST = {"reassoc", "contract"}            # not "arcp"/"nsz": with "reassoc" they cost exp_neg 60 ulp
jit = numba.njit(nogil=True, cache=True, fastmath=FAST, error_model="numpy", boundscheck=False)
# Without "contract", for layer norm: fma(g, w, -mean(g w)) keeps g*w unrounded, so with one feature
# dx = rstd (g w - mean(g w) - 0) comes out as 1e-6 instead of exactly 0.
jit_no_fma = numba.njit(nogil=True, cache=True, fastmath={"reassoc"}, error_model="numpy", boundscheck=False)
# No fastmath at all, for Adam(W): every product and sum rounded as in the reference's formula.
jit_exact = numba.njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)
inline = numba.njit(inline="always", fastmath=FAST, error_model="numpy")
