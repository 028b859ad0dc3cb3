"""Forward + backward time of the transformer's layers, tinyllm against PyTorch eager (CPU).

    python bench/layers.py [--reps 15] [--quick] [--threads N] [--cases attention block ...]

For each case and shape both sides get the same float32 inputs and weights and
run forward, then backward of a fixed cotangent. Rounds interleave the two
(``common.compare``: A B A B ...), so drifts in clock speed or load hit both
alike; the table shows the median of each and their ratio, measured in this
one run. PyTorch uses as many threads as NumPy's BLAS: all the cores, or
``--threads N`` for both (set before NumPy loads its BLAS). On a machine shared
with other jobs, ``--threads 1`` gives the steadiest ratios: a multi-threaded
BLAS that loses a core to another process waits for it.

Cases: multi-head causal self-attention (QKV projection, attention, output
projection), layer norm, cross-entropy over a vocabulary, and a whole pre-LN
Transformer block (LN, attention, LN, GELU MLP, two residuals).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

if "--threads" in sys.argv[:-1]:  # must reach OpenBLAS / MKL / OpenMP before they load
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = sys.argv[sys.argv.index("--threads") + 1]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
from common import compare, match_torch_threads, print_table, torch_available  # noqa: E402  (before NumPy)

import numpy as np  # noqa: E402

import tinyllm  # noqa: E402
from tinyllm import nn  # noqa: E402

B = 12
SHAPES = [(64, 128), (128, 256), (256, 384)]   # (T, C); heads of size 64
VOCAB = 4096                                   # classes of the cross-entropy case


# ----------------------------------------------------------------------------- cases
# Each returns two closures that run forward + backward once, on the same data.

def _step_ours(module: nn.Module, run: Callable[[], tinyllm.Tensor], g: np.ndarray,
               x: tinyllm.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad()
        x.grad = None                       # as the torch side: a fresh input gradient, not one more sum
        run().backward(g)
    return step


def _step_torch(params: list, run: Callable[[], Any], g: Any) -> Callable[[], None]:
    def step() -> None:
        for p in params:
            p.grad = None
        run().backward(g)
    return step


def _torch_linear(torch: Any, layer: nn.Linear) -> tuple[Any, Any]:
    w = torch.tensor(layer.weight.numpy(), requires_grad=True)
    b = torch.tensor(layer.bias.numpy(), requires_grad=True) if layer.bias is not None else None
    return w, b


def case_attention(torch: Any, t: int, c: int, rng: np.random.Generator) -> tuple:
    F = torch.nn.functional
    n_head = c // 64
    mha = nn.MultiHeadAttention(c, n_head, causal=True)
    x = rng.standard_normal((B, t, c)).astype(np.float32)
    g = rng.standard_normal((B, t, c)).astype(np.float32)
    xt = tinyllm.tensor(x, requires_grad=True)
    (wa, ba), (wp, bp) = _torch_linear(torch, mha.c_attn), _torch_linear(torch, mha.c_proj)
    tx = torch.tensor(x, requires_grad=True)

    def torch_run() -> Any:
        q, k, v = F.linear(tx, wa, ba).split(c, dim=-1)                              # (B, T, C) each
        q, k, v = (z.view(B, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)                   # (B, nh, T, hs)
        return F.linear(y.transpose(1, 2).reshape(B, t, c), wp, bp)

    return (_step_ours(mha, lambda: mha(xt), g, xt),
            _step_torch([wa, ba, wp, bp, tx], torch_run, torch.tensor(g)))


def case_layer_norm(torch: Any, t: int, c: int, rng: np.random.Generator) -> tuple:
    F = torch.nn.functional
    ln = nn.LayerNorm(c)
    x = rng.standard_normal((B, t, c)).astype(np.float32)
    g = rng.standard_normal((B, t, c)).astype(np.float32)
    xt = tinyllm.tensor(x, requires_grad=True)
    tx, w, b = (torch.tensor(a, requires_grad=True) for a in (x, ln.weight.numpy(), ln.bias.numpy()))
    return (_step_ours(ln, lambda: ln(xt), g, xt),
            _step_torch([tx, w, b], lambda: F.layer_norm(tx, (c,), w, b, 1e-5), torch.tensor(g)))


def case_cross_entropy(torch: Any, t: int, c: int, rng: np.random.Generator) -> tuple:
    F = torch.nn.functional
    logits = rng.standard_normal((B, t, VOCAB)).astype(np.float32)
    targets = rng.integers(0, VOCAB, (B, t))
    lt = tinyllm.tensor(logits, requires_grad=True)
    tl, tt = torch.tensor(logits, requires_grad=True), torch.tensor(targets)

    def ours() -> None:
        lt.grad = None
        nn.cross_entropy(lt, targets).backward()

    def theirs() -> None:
        tl.grad = None
        F.cross_entropy(tl.view(-1, VOCAB), tt.view(-1)).backward()

    return ours, theirs


def case_block(torch: Any, t: int, c: int, rng: np.random.Generator) -> tuple:
    F = torch.nn.functional
    n_head = c // 64
    block = nn.TransformerBlock(c, n_head, causal=True, norm_first=True)
    x = rng.standard_normal((B, t, c)).astype(np.float32)
    g = rng.standard_normal((B, t, c)).astype(np.float32)
    xt = tinyllm.tensor(x, requires_grad=True)
    tp = {n: torch.tensor(p.numpy(), requires_grad=True) for n, p in block.named_parameters()}
    tx = torch.tensor(x, requires_grad=True)

    def torch_run() -> Any:
        def ln(name: str, z: Any) -> Any:
            return F.layer_norm(z, (c,), tp[f"{name}.weight"], tp[f"{name}.bias"], 1e-5)

        h = ln("ln_1", tx)
        q, k, v = F.linear(h, tp["attn.c_attn.weight"], tp["attn.c_attn.bias"]).split(c, dim=-1)
        q, k, v = (z.view(B, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, t, c)
        z = tx + F.linear(y, tp["attn.c_proj.weight"], tp["attn.c_proj.bias"])
        m = F.gelu(F.linear(ln("ln_2", z), tp["mlp.c_fc.weight"], tp["mlp.c_fc.bias"]), approximate="tanh")
        return z + F.linear(m, tp["mlp.c_proj.weight"], tp["mlp.c_proj.bias"])

    return (_step_ours(block, lambda: block(xt), g, xt),
            _step_torch(list(tp.values()) + [tx], torch_run, torch.tensor(g)))


CASES = {"attention": case_attention, "layer_norm": case_layer_norm,
         "cross_entropy": case_cross_entropy, "block": case_block}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="timed rounds of each side")
    parser.add_argument("--quick", action="store_true", help="the smallest shape only")
    parser.add_argument("--threads", type=int, help="BLAS and PyTorch threads (default: all cores)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    if not torch_available():
        sys.exit("bench/layers.py compares with PyTorch: pip install torch")
    import torch  # noqa: PLC0415
    threads = match_torch_threads()
    tinyllm.set_default_dtype("float32")
    tinyllm.manual_seed(0)
    print(f"B={B}, float32, {threads} thread(s) for NumPy's BLAS and torch {torch.__version__}; "
          f"forward + backward, median of {args.reps} interleaved rounds")
    rows, ratios = [], []
    for name in args.cases:
        for t, c in SHAPES[:1] if args.quick else SHAPES:
            ours, theirs = CASES[name](torch, t, c, np.random.default_rng(0))
            times = compare({"tinyllm": ours, "torch": theirs}, repeat=args.reps, number=1, warmup=2)
            ratio = times["tinyllm"] / times["torch"]
            ratios.append(ratio)
            shape = f"T={t} " + (f"V={VOCAB}" if name == "cross_entropy" else f"C={c}")
            rows.append((name, shape, times["tinyllm"] * 1e3, times["torch"] * 1e3, ratio))
    print_table(rows, ["case", "shape", "tinyllm ms", "torch ms", "ratio"])
    print(f"geometric mean ratio {float(np.exp(np.mean(np.log(ratios)))):.2f} (tinyllm / torch; below 1 is faster)")


if __name__ == "__main__":
    main()
