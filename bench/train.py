"""Training throughput: tinyllm against an identical PyTorch GPT, each in fresh processes of its own.

    python bench/train.py                          # nano and large, 4 rounds of 5 + 40 steps
    python bench/train.py --config nano --rounds 6
    python bench/train.py --import-numpy-first     # the tinyllm process imports NumPy before tinyllm
    python bench/train.py --backend cupy --config gpu
    python bench/train.py --in-process --config nano   # profiling aid only, NOT the comparison

A step is forward, backward, gradient clipping (1.0) and AdamW, on the same
model (``reference_gpt.py`` is the PyTorch twin), the same weights (a setup
process writes them once) and the same batches. Each contender runs in a fresh
process with the user's environment, alternating A, B, A, B over ``--rounds``
rounds (``bench/harness.py``); the table gives the median tokens/s of each,
its spread over the rounds, the ratio of the medians, the peak RSS of each
process, and MFU = model FLOPs per token x tokens/s over the float32 matmul
peak (measured in processes of its own before and after, the best of them).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402  (imports nothing heavy: NumPy must not load before tinyllm in a child)
import harness  # noqa: E402
import steps  # noqa: E402

CONFIGS = {
    "tiny": dict(vocab_size=65, block_size=16, n_layer=1, n_head=2, n_embd=32, batch_size=2),   # tests
    # nanoGPT's Shakespeare-char CPU config
    "nano": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, batch_size=12),
    "large": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, batch_size=16),
    # nanoGPT's Shakespeare-char GPU config (for --backend cupy)
    "gpu": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, batch_size=64),
}
LR, WD, BETAS, CLIP = 1e-3, 0.1, (0.9, 0.99), 1.0


def model_args(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k != "batch_size"}


def build_tinyllm(cfg: dict, seed: int = 0, state: dict | None = None):
    """A tinyllm GPT (weights from ``state`` when given), its AdamW, and one training step."""
    import tinyllm  # noqa: PLC0415
    from tinyllm.models import GPT, GPTConfig  # noqa: PLC0415
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**model_args(cfg), dropout=0.0))
    if state is not None:
        model.load_state_dict(state)
    opt = common.tinyllm_adamw(model, LR, WD, BETAS)

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        common.tinyllm_clip(opt, model, CLIP)
        opt.step()
        opt.zero_grad()
        return loss
    return model, step, opt


def build_torch(cfg: dict, state: dict | None, device: str = "cpu"):
    """The PyTorch twin (weights from a tinyllm ``state_dict`` when given), its AdamW, and one step."""
    import torch  # noqa: PLC0415
    from reference_gpt import ReferenceGPT, load_from_tinyllm  # noqa: PLC0415
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
    """``n`` (inputs, targets) pairs of random token ids, (B, T) each; the same on both sides."""
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    shape = (cfg["batch_size"], cfg["block_size"])
    return [(rng.integers(0, cfg["vocab_size"], shape), rng.integers(0, cfg["vocab_size"], shape)) for _ in range(n)]


# ----------------------------------------------------------------------------- children

def child(args: argparse.Namespace) -> None:
    cfg = CONFIGS[args.config]

    def flops(model, side: str) -> int:
        if side == "tinyllm":
            return model.flops_per_token()
        non_embedding = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
        return common.transformer_flops_per_token(non_embedding, cfg["n_layer"], cfg["n_head"], cfg["n_embd"],
                                                  cfg["block_size"])
    steps.child(args, lambda state: build_tinyllm(cfg, state=state)[:2],
                lambda state, device: build_torch(cfg, state, device)[:2],
                lambda n: batches(cfg, n), cfg["batch_size"] * cfg["block_size"], flops, {"config": args.config})


# ----------------------------------------------------------------------------- in-process profiling aid

def in_process(config: str, steps: int, backend: str) -> None:
    """Both engines in ONE process, step by step A/B. A profiling aid, NOT the comparison: the two
    share the process's threads, allocator and environment, which no user's run does."""
    import tinyllm  # noqa: PLC0415  (before torch, which loads NumPy)
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    tinyllm.set_backend(backend)
    cfg = CONFIGS[config]
    device = "cuda" if backend == "cupy" else "cpu"
    tl_model, tl_step, _ = build_tinyllm(cfg)
    state = {k: common.tinyllm_to_numpy(v) for k, v in tl_model.state_dict().items()}
    _, th_step, _ = build_torch(cfg, state, device)
    data = batches(cfg, steps + 3)
    sync_th = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: dict = {"tinyllm": [], "torch": []}
    for i, (x, y) in enumerate(data):
        t = time.perf_counter()
        tl_step(common.tinyllm_asarray(x), common.tinyllm_asarray(y)).item()
        dt_tl = time.perf_counter() - t
        t = time.perf_counter()
        th_step(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)).item()
        sync_th()
        if i >= 3:
            times["tinyllm"].append(dt_tl)
            times["torch"].append(time.perf_counter() - t)
    tokens = cfg["batch_size"] * cfg["block_size"]
    tps = {k: tokens / float(np.median(v)) for k, v in times.items()}
    print(f"IN-PROCESS (profiling aid, not the comparison) {config}: tinyllm {tps['tinyllm']:.0f} tok/s, "
          f"torch {tps['torch']:.0f} tok/s, ratio {tps['tinyllm'] / tps['torch']:.2f}")


# ----------------------------------------------------------------------------- parent

def peak_libs(backend: str) -> tuple[str, ...]:
    return ("cupy", "torch-cuda") if backend == "cupy" else ("numpy", "torch")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=[*CONFIGS, "both"], default="both")
    ap.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    ap.add_argument("--no-peak", action="store_true", help="skip the matmul-peak processes (no MFU)")
    ap.add_argument("--in-process", action="store_true", help="profiling aid: both engines in one process")
    harness.add_arguments(ap)
    harness.add_quick(ap)
    args = harness.parse(ap, argv)
    if args.child:
        child(args)
        return {}
    names = ["nano", "large"] if args.config == "both" else [args.config]
    if args.in_process:
        for name in names:
            in_process(name, args.steps, args.backend)
        return {}
    peaks = [] if args.no_peak else [harness.matmul_peak(peak_libs(args.backend))]
    out: dict = {"configs": {}}
    for name in names:
        summary, contenders = steps.compare(
            __file__, ["--config", name, "--backend", args.backend], args,
            title=f"{name}: training tokens/s, {args.rounds} round(s) of {args.warmup} + {args.steps} steps, "
                  f"fresh processes")
        out["configs"][name] = {"summary": summary, "results": {c.name: c.results for c in contenders}}
    if not args.no_peak:
        peaks.append(harness.matmul_peak(peak_libs(args.backend)))
        best = max(v for p in peaks for v in p.values())
        print(f"float32 matmul peak, best of {sum(len(p) for p in peaks)} fresh-process measurements: "
              f"{best / 1e9:.1f} GFLOP/s ({'; '.join(f'{k} {v / 1e9:.1f}' for p in peaks for k, v in p.items())})")
        for name, rec in out["configs"].items():
            for c, res in rec["results"].items():
                mfu = res[0]["flops_per_token"] * rec["summary"][c]["per_s"]["median"] / best
                rec["summary"][c]["mfu"] = mfu
                print(f"  MFU {name} {c}: {mfu:.1%} (median tokens/s x {res[0]['flops_per_token']:,} FLOPs/token)")
        out["peak_flops"] = best
        out["peaks"] = peaks
    harness.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
