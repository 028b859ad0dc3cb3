"""Training throughput: tinyllm vs. an identical PyTorch GPT, side by side in one run.

    python bench/train.py                 # both configs
    python bench/train.py --config nano   # nanoGPT's CPU config only
    python bench/train.py --backend cupy  # GPU: tinyllm on CuPy vs PyTorch CUDA

A step is forward, backward, gradient clipping (1.0) and AdamW. The two
implementations alternate step by step (A/B) for ``--reps`` repetitions and
the medians are compared, so machine noise hits both alike. Also reported:
MFU = model FLOPs per token x tokens/s over the measured float32 matmul peak
of this machine (a large NumPy matmul, measured in the same run), and the
peak memory of each implementation, measured in its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402,F401  (OMP_WAIT_POLICY, OPENBLAS_THREAD_TIMEOUT before torch and NumPy load)
import numpy as np  # noqa: E402

CONFIGS = {
    # nanoGPT's Shakespeare-char CPU config
    "nano": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, batch_size=12),
    "large": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, batch_size=16),
    # nanoGPT's Shakespeare-char GPU config (for --backend cupy)
    "gpu": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, batch_size=64),
}
LR, WD, BETAS, CLIP = 1e-3, 0.1, (0.9, 0.99), 1.0


def matmul_peak(xp=np, n: int = 2048, reps: int = 5) -> float:
    """Float32 matmul FLOP/s of this machine: the best of ``reps`` n x n x n products."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    best = float("inf")
    for _ in range(reps + 1):
        t = time.perf_counter()
        a @ a
        if xp is not np:
            xp.cuda.get_current_stream().synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def model_args(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "batch_size"}


def build_tinyllm(cfg: dict, seed: int = 0):
    import tinyllm
    from tinyllm.models import GPT, GPTConfig
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**model_args(cfg), dropout=0.0))
    opt = model.configure_optimizer(lr=LR, weight_decay=WD, betas=BETAS)

    def step(x, y) -> float:
        _, loss = model(x, y)
        loss.backward()
        opt.clip_grad_norm_(CLIP, sync=False)   # as torch's: the GPU is not waited for
        opt.step()
        opt.zero_grad()
        return loss
    return model, step, opt


def build_torch(cfg: dict, state: dict | None, device: str = "cpu"):
    import torch
    from reference_gpt import ReferenceGPT, load_from_tinyllm
    model = ReferenceGPT(**model_args(cfg))
    if state is not None:
        load_from_tinyllm(model, state)
    model.to(device)
    opt = model.configure_optimizer(lr=LR, weight_decay=WD, betas=BETAS)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return model, step, opt


def batches(cfg: dict, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    shape = (cfg["batch_size"], cfg["block_size"])
    return [(rng.integers(0, cfg["vocab_size"], shape), rng.integers(0, cfg["vocab_size"], shape)) for _ in range(n)]


def peak_memory(impl: str, config: str, backend: str) -> dict:
    """Run a few steps of one implementation in a fresh process; return its peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--memory-probe", impl, "--config", config,
                          "--backend", backend], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def memory_probe(impl: str, config: str, backend: str) -> None:
    cfg = CONFIGS[config]
    data = batches(cfg, 4)
    if impl == "tinyllm":
        import tinyllm
        tinyllm.set_backend(backend)
        _, step, _ = build_tinyllm(cfg)
        conv = lambda b: b  # noqa: E731
    else:
        import torch
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        _, step, _ = build_torch(cfg, None)
        conv = lambda b: (torch.from_numpy(b[0]), torch.from_numpy(b[1]))  # noqa: E731
    base = _rss_kib("VmRSS:")
    for b in data:
        step(*conv(b))
    print(json.dumps({"peak_mib": _rss_kib("VmHWM:") / 1024, "after_setup_mib": base / 1024}))


def run(config: str, reps: int, backend: str, peak: float) -> dict:
    import torch
    import tinyllm
    cfg = CONFIGS[config]
    device = "cuda" if backend == "cupy" else "cpu"
    tl_model, tl_step, _ = build_tinyllm(cfg)
    state = {k: tinyllm.backend.to_numpy(v) for k, v in tl_model.state_dict().items()}
    _, th_step, _ = build_torch(cfg, state, device)
    data = batches(cfg, reps + 3)
    data = [(tinyllm.backend.asarray(x), tinyllm.backend.asarray(y)) for x, y in data]   # on the device, as torch's
    th_data = [(torch.from_numpy(tinyllm.backend.to_numpy(x)).to(device),
                torch.from_numpy(tinyllm.backend.to_numpy(y)).to(device)) for x, y in data]
    sync_th = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    times: dict = {"tinyllm": [], "torch": []}
    losses: dict = {"tinyllm": [], "torch": []}
    for i in range(reps + 3):
        t = time.perf_counter()
        loss = tl_step(*data[i])
        losses["tinyllm"].append(loss.item())       # .item() syncs the GPU
        dt_tl = time.perf_counter() - t
        t = time.perf_counter()
        loss = th_step(*th_data[i])
        sync_th()
        losses["torch"].append(loss.item())
        dt_th = time.perf_counter() - t
        if i >= 3:  # the first steps warm caches and allocators
            times["tinyllm"].append(dt_tl)
            times["torch"].append(dt_th)
    tokens = cfg["batch_size"] * cfg["block_size"]
    tps = {k: tokens / float(np.median(v)) for k, v in times.items()}
    flops = tl_model.flops_per_token()
    return {
        "config": config, "tokens_per_step": tokens, "tps": tps, "ratio": tps["tinyllm"] / tps["torch"],
        "flops_per_token": flops, "mfu": {k: flops * v / peak for k, v in tps.items()},
        "max_loss_diff": float(np.max(np.abs(np.subtract(losses["tinyllm"], losses["torch"])))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=["nano", "large", "gpu", "both"], default="both")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--memory-probe", choices=["tinyllm", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, args.config, args.backend)
        return
    try:
        import torch
    except ImportError:
        sys.exit("bench/train.py compares against PyTorch: pip install torch")
    import tinyllm
    tinyllm.set_backend(args.backend)
    threads = max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    xp = tinyllm.backend.xp()
    n = 8192 if args.backend == "cupy" else 2048
    peak = matmul_peak(xp, n=n)
    print(f"float32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.backend}); torch threads: {threads}")
    names = ["nano", "large"] if args.config == "both" else [args.config]
    print(f"{'config':7} {'tinyllm tok/s':>14} {'torch tok/s':>12} {'ratio':>6} {'MFU tl':>7} {'MFU th':>7}"
          f" {'peak MiB tl':>12} {'peak MiB th':>12} {'max |dloss|':>11}")
    for name in names:
        r = run(name, args.reps, args.backend, peak)
        # Measured again after each config: a busy moment can only make a measurement low (and
        # an MFU over 100%), so the best so far is the peak.
        peak = max(peak, matmul_peak(xp, n=n))
        r["mfu"] = {k: r["flops_per_token"] * v / peak for k, v in r["tps"].items()}
        mem = {"tinyllm": {"peak_mib": float("nan")}, "torch": {"peak_mib": float("nan")}}
        if not args.no_memory and args.backend == "numpy":
            mem = {k: peak_memory(k, name, args.backend) for k in mem}
        print(f"{name:7} {r['tps']['tinyllm']:14.0f} {r['tps']['torch']:12.0f} {r['ratio']:6.2f}"
              f" {r['mfu']['tinyllm']:7.1%} {r['mfu']['torch']:7.1%}"
              f" {mem['tinyllm']['peak_mib']:12.0f} {mem['torch']['peak_mib']:12.0f} {r['max_loss_diff']:11.2e}")
    print(f"MFU against the best matmul peak measured in this run: {peak / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
