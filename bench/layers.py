"""Forward + backward time of the transformer's layers, tinyllm against PyTorch eager (CPU).

    python bench/layers.py [--rounds 4] [--reps 15] [--quick] [--cases attention block ...]
    python bench/layers.py --threads 1          # one thread for both (set for both processes alike)
    python bench/layers.py --in-process         # profiling aid: both in one process, NOT the comparison

For each case and shape both sides run forward, then backward of a fixed
cotangent, on float32 inputs of the same shapes and values (weights: each
side's own initialization; the values do not change the time). Each side runs
in fresh processes of its own (``bench/harness.py``), alternating tinyllm,
torch over ``--rounds`` rounds; a process times every case (``--reps``
timed calls after 5 warm-up calls, their median). The table shows, per case,
the median over the rounds of each side's ms, the spread, and the ratio.
``--threads N`` sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS
for both sides' processes (for a steadier ratio on a busy machine).

Cases: multi-head causal self-attention (QKV projection, attention, output
projection), layer norm, cross-entropy over a vocabulary, and a whole pre-LN
Transformer block (LN, attention, LN, GELU MLP, two residuals).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from common import compare, print_table, torch_available  # noqa: E402

B = 12
SHAPES = [(64, 128), (128, 256), (256, 384)]   # (T, C); heads of size 64
VOCAB = 4096                                   # classes of the cross-entropy case


# ----------------------------------------------------------------------------- cases
# Each builds ONE side's closure that runs forward + backward once. Inputs come from
# numpy's generator with a fixed seed, so both sides see the same values.

def _inputs(t: int, c: int) -> tuple:
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(0)
    return (rng.standard_normal((B, t, c)).astype(np.float32), rng.standard_normal((B, t, c)).astype(np.float32))


def _ours(module: Any, x: Any, g: Any) -> Callable[[], None]:
    import tinyllm  # noqa: PLC0415
    xt = tinyllm.tensor(x, requires_grad=True)

    def step() -> None:
        module.zero_grad()
        xt.grad = None                      # as the torch side: a fresh input gradient, not one more sum
        module(xt).backward(g)
    return step


def _theirs(params: list, run: Callable[[], Any], g: Any) -> Callable[[], None]:
    def step() -> None:
        for p in params:
            p.grad = None
        run().backward(g)
    return step


def _torch_params(torch: Any, shapes: dict, scale: float = 0.02) -> dict:
    return {n: (torch.randn(*s) * (scale if len(s) > 1 else 0.0) + (1.0 if n.startswith("ln") and n.endswith(
        "weight") else 0.0)).requires_grad_() for n, s in shapes.items()}


def _block_shapes(c: int) -> dict:
    return {"ln_1.weight": (c,), "ln_1.bias": (c,), "attn.c_attn.weight": (3 * c, c), "attn.c_attn.bias": (3 * c,),
            "attn.c_proj.weight": (c, c), "attn.c_proj.bias": (c,), "ln_2.weight": (c,), "ln_2.bias": (c,),
            "mlp.c_fc.weight": (4 * c, c), "mlp.c_fc.bias": (4 * c,), "mlp.c_proj.weight": (c, 4 * c),
            "mlp.c_proj.bias": (c,)}


def _torch_attention(torch: Any, p: dict, h: Any, t: int, c: int, prefix: str = "") -> Any:
    F = torch.nn.functional
    n_head = c // 64
    q, k, v = F.linear(h, p[f"{prefix}c_attn.weight"], p[f"{prefix}c_attn.bias"]).split(c, dim=-1)   # (B, T, C) each
    q, k, v = (z.view(B, t, n_head, c // n_head).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)                                     # (B, nh, T, hs)
    return F.linear(y.transpose(1, 2).reshape(B, t, c), p[f"{prefix}c_proj.weight"], p[f"{prefix}c_proj.bias"])


def case_attention(side: str, t: int, c: int) -> Callable[[], None]:
    x, g = _inputs(t, c)
    if side == "tinyllm":
        from tinyllm import nn  # noqa: PLC0415
        return _ours(nn.MultiHeadAttention(c, c // 64, causal=True), x, g)
    import torch  # noqa: PLC0415
    p = _torch_params(torch, {"c_attn.weight": (3 * c, c), "c_attn.bias": (3 * c,), "c_proj.weight": (c, c),
                              "c_proj.bias": (c,)})
    tx = torch.tensor(x, requires_grad=True)
    return _theirs([*p.values(), tx], lambda: _torch_attention(torch, p, tx, t, c), torch.tensor(g))


def case_layer_norm(side: str, t: int, c: int) -> Callable[[], None]:
    x, g = _inputs(t, c)
    if side == "tinyllm":
        from tinyllm import nn  # noqa: PLC0415
        return _ours(nn.LayerNorm(c), x, g)
    import torch  # noqa: PLC0415
    tx, w, b = torch.tensor(x, requires_grad=True), torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
    return _theirs([tx, w, b], lambda: torch.nn.functional.layer_norm(tx, (c,), w, b, 1e-5), torch.tensor(g))


def case_cross_entropy(side: str, t: int, c: int) -> Callable[[], None]:
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((B, t, VOCAB)).astype(np.float32)
    targets = rng.integers(0, VOCAB, (B, t))
    if side == "tinyllm":
        import tinyllm  # noqa: PLC0415
        from tinyllm import nn  # noqa: PLC0415
        lt = tinyllm.tensor(logits, requires_grad=True)

        def ours() -> None:
            lt.grad = None
            nn.cross_entropy(lt, targets).backward()
        return ours
    import torch  # noqa: PLC0415
    tl, tt = torch.tensor(logits, requires_grad=True), torch.tensor(targets)

    def theirs() -> None:
        tl.grad = None
        torch.nn.functional.cross_entropy(tl.view(-1, VOCAB), tt.view(-1)).backward()
    return theirs


def case_block(side: str, t: int, c: int) -> Callable[[], None]:
    x, g = _inputs(t, c)
    if side == "tinyllm":
        from tinyllm import nn  # noqa: PLC0415
        return _ours(nn.TransformerBlock(c, c // 64, causal=True, norm_first=True), x, g)
    import torch  # noqa: PLC0415
    F = torch.nn.functional
    p = _torch_params(torch, _block_shapes(c))
    tx = torch.tensor(x, requires_grad=True)

    def run() -> Any:
        def ln(name: str, z: Any) -> Any:
            return F.layer_norm(z, (c,), p[f"{name}.weight"], p[f"{name}.bias"], 1e-5)
        z = tx + _torch_attention(torch, p, ln("ln_1", tx), t, c, "attn.")
        m = F.gelu(F.linear(ln("ln_2", z), p["mlp.c_fc.weight"], p["mlp.c_fc.bias"]), approximate="tanh")
        return z + F.linear(m, p["mlp.c_proj.weight"], p["mlp.c_proj.bias"])
    return _theirs([*p.values(), tx], run, torch.tensor(g))


CASES = {"attention": case_attention, "layer_norm": case_layer_norm,
         "cross_entropy": case_cross_entropy, "block": case_block}


def _shape_label(name: str, t: int, c: int) -> str:
    return f"T={t} " + (f"V={VOCAB}" if name == "cross_entropy" else f"C={c}")


def _selected(args: argparse.Namespace) -> list[tuple[str, int, int]]:
    return [(name, t, c) for name in args.cases for t, c in (SHAPES[:1] if args.quick else SHAPES)]


# ----------------------------------------------------------------------------- child, parent

def child(args: argparse.Namespace) -> None:
    """One side, every selected case: the median ms of ``--reps`` calls after 5 warm-up calls."""
    if args.child == "tinyllm":
        tinyllm = harness.import_tinyllm(args.import_numpy_first)
        tinyllm.set_default_dtype("float32")
        tinyllm.manual_seed(0)
    else:
        import torch  # noqa: PLC0415
        torch.manual_seed(0)
    ms = {}
    for name, t, c in _selected(args):
        fn = CASES[name](args.child, t, c)
        times = harness.time_steps(lambda i, fn=fn: fn(), 5, args.reps)
        ms[f"{name} {_shape_label(name, t, c)}"] = statistics.median(times) * 1e3
    harness.report({"ms": ms})


def in_process(args: argparse.Namespace) -> None:
    """Both sides in ONE process, interleaved call by call: a profiling aid, not the comparison."""
    import tinyllm  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    tinyllm.set_default_dtype("float32")
    tinyllm.manual_seed(0)
    rows, ratios = [], []
    for name, t, c in _selected(args):
        times = compare({"tinyllm": CASES[name]("tinyllm", t, c), "torch": CASES[name]("torch", t, c)},
                        repeat=args.reps, number=1, warmup=2)
        ratios.append(times["tinyllm"] / times["torch"])
        rows.append((name, _shape_label(name, t, c), times["tinyllm"] * 1e3, times["torch"] * 1e3, ratios[-1]))
    print("IN-PROCESS (profiling aid, not the comparison)")
    print_table(rows, ["case", "shape", "tinyllm ms", "torch ms", "ratio"])
    print(f"geometric mean ratio {float(np.exp(np.mean(np.log(ratios)))):.2f} (tinyllm / torch; below 1 is faster)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="timed calls of each case in a process")
    parser.add_argument("--quick", action="store_true", help="the smallest shape only")
    parser.add_argument("--threads", type=int, help="BLAS and OpenMP threads of both sides (default: theirs)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--in-process", action="store_true", help="profiling aid: both sides in one process")
    harness.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return {}
    if not torch_available():
        sys.exit("bench/layers.py compares with PyTorch: pip install torch")
    if args.threads:   # the same for both sides, before either process loads its BLAS
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.in_process:
        in_process(args)
        return {}
    flags = [*(["--quick"] if args.quick else []), "--reps", str(args.reps), "--cases", *args.cases]
    contenders = [harness.Contender(name, [__file__, *flags, *(["--import-numpy-first"] if name == "tinyllm"
                                                               and args.import_numpy_first else []),
                                           "--child", name]) for name in ("tinyllm", "torch")]
    t0 = time.perf_counter()
    harness.alternate(contenders, args.rounds, log=lambda s: None)
    print(f"B={B}, float32, forward + backward; per side {args.rounds} fresh process(es) of {args.reps} timed calls "
          f"per case ({time.perf_counter() - t0:.0f} s)")
    rows, ratios, out = [], [], {}
    for key in contenders[0].results[0]["ms"]:
        ours, theirs = (harness.spread([r["ms"][key] for r in c.results]) for c in contenders)
        ratio = ours["median"] / theirs["median"]
        ratios.append(ratio)
        out[key] = {"tinyllm": ours, "torch": theirs, "ratio": ratio}
        rows.append((key, f"{ours['median']:.3g} [{ours['min']:.3g}-{ours['max']:.3g}]",
                     f"{theirs['median']:.3g} [{theirs['min']:.3g}-{theirs['max']:.3g}]", ratio))
    print_table(rows, ["case", "tinyllm ms [min-max]", "torch ms [min-max]", "ratio"])
    gmean = statistics.geometric_mean(ratios)
    print(f"geometric mean ratio {gmean:.2f} (tinyllm / torch time; below 1 is faster)")
    loads = [r["load_1min"] for c in contenders for r in c.results]
    print(f"1-minute load average as the processes ended: {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs")
    harness.write_json(args.json, {"cases": out, "geometric_mean_ratio": gmean,
                                   "results": {c.name: c.results for c in contenders}})
    return out


if __name__ == "__main__":
    main()
