"""``profile_step.py --sections floor``: the child process that records and replays a step's
products (``floor.py``), and the report: products-only ms/step, tokens/s, MFU, the largest ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import harness  # noqa: E402
from floor import product_flops, record, replay, time_floor  # noqa: E402


def child(config: str, reps: int) -> None:
    """Child process: two warm-up steps, one recorded step, then the products and the real step
    alternated ``reps`` times; prints the harness's result line."""
    from train import CONFIGS, batches, build_tinyllm  # noqa: PLC0415
    harness.import_tinyllm(False)
    cfg = CONFIGS[config]
    model, step, _ = build_tinyllm(cfg)
    data = [tuple(common.tinyllm_asarray(a) for a in b) for b in batches(cfg, 3)]
    for b in data[:2]:
        step(*b).item()
    calls = record(step, data[2])
    fns = replay(calls)
    overlap = common.blas_threads() > 1 and any(label == "Linear dY W + Linear dY^T X" for label, _ in fns)
    # ... at once on two cores; alternated with that, the same one after the other
    res = time_floor(fns, lambda: step(*data[2]).item(), reps,
                     switch=common.tinyllm_linear_overlap if overlap else None)
    flops = product_flops(calls)
    harness.report({**res, "config": config, "tokens_per_step": cfg["batch_size"] * cfg["block_size"],
                    "flops_per_token": int(model.flops_per_token()), "product_flops": flops,
                    "calls": {k: sum(c.kind == k for c in calls) for k in sorted({c.kind for c in calls})},
                    "blas_threads": common.blas_threads()})


def torch_tokens_per_s(config: str, steps: int, threads: int) -> float:
    """PyTorch's tokens/s in a quick fresh process of ``bench/train.py``'s torch twin (3 + ``steps`` steps),
    in the user's environment as it is; only where the floor's BLAS had fewer threads than the
    machine has CPUs (a pinned or limited run) is torch limited the same way (``OMP_NUM_THREADS``)."""
    env = dict(os.environ)
    if threads < (os.cpu_count() or 1):
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    res = harness.run_child([os.path.join(HERE, "train.py"), "--config", config, "--child", "torch",
                             "--warmup", "3", "--steps", str(steps)], env=env)
    return float(res["per_s"])


def section(config: str, steps: int, torch_tok_s: float | None) -> dict[str, Any]:
    """The floor of ``config``: products-only ms/step, the tokens/s and MFU that would give, and the
    largest ratio to PyTorch that zero overhead outside the products would reach. Printed; returned."""
    peak = max(harness.matmul_peak(("numpy", "torch") if common.torch_available() else ("numpy",)).values())
    res = harness.run_child([os.path.abspath(__file__), "--config", config, "--reps", str(steps)])
    if torch_tok_s is None and common.torch_available():
        torch_tok_s = torch_tokens_per_s(config, steps, res["blas_threads"])
        how = f"measured now: {res['blas_threads']} thread(s), 3 + {steps} steps, a fresh process"
    else:
        how = "given"
    tokens, fpt = res["tokens_per_step"], res["flops_per_token"]
    floor_tok_s = tokens / res["floor_wall_s"]
    step_tok_s = tokens / res["step_wall_s"]
    total = sum(res["product_flops"].values())
    print(f"== floor: {config}, the matrix products of one step alone ({res['blas_threads']} BLAS thread(s); "
          f"{', '.join(f'{n} {k}' for k, n in res['calls'].items())})")
    print(f"  products only   {res['floor_wall_s'] * 1e3:8.2f} ms/step wall ({res['floor_cpu_s'] * 1e3:.2f} ms CPU)"
          f"  -> {floor_tok_s:9.0f} tokens/s, MFU {fpt * floor_tok_s / peak:6.1%}")
    print(f"  the real step   {res['step_wall_s'] * 1e3:8.2f} ms/step wall ({res['step_cpu_s'] * 1e3:.2f} ms CPU)"
          f"  -> {step_tok_s:9.0f} tokens/s, MFU {fpt * step_tok_s / peak:6.1%}  (same process, alternated)")
    print(f"  outside the products: {(res['step_wall_s'] - res['floor_wall_s']) * 1e3:.2f} ms/step wall, "
          f"{1 - res['floor_wall_s'] / res['step_wall_s']:.1%} of the step")
    print(f"  product FLOPs {total / tokens:,.0f}/token (model FLOPs {fpt:,}/token); "
          f"peak {peak / 1e9:.1f} GFLOP/s (bench/harness.py, best of NumPy and torch)")
    flops = res["product_flops"]
    print(f"    {'products':28} {'ms/step':>8} {'MFLOP/step':>10} {'GFLOP/s':>8}")
    for label, sec in res["by_label_s"].items():
        f = sum(v for k, v in flops.items() if any(k.startswith(part) for part in label.split(" + ")))
        print(f"    {label:28} {sec * 1e3:8.2f} {f / 1e6:10.1f} {f / sec / 1e9:8.1f}")
    off = res.get("off")
    if off is not None:
        print(f"  with Linear backward's two products one after the other (BLAS threads splitting each), "
              f"alternated with the above: products {off['floor_wall_s'] * 1e3:.2f} ms, the real step "
              f"{off['step_wall_s'] * 1e3:.2f} ms wall ({tokens / off['step_wall_s']:.0f} tokens/s)")
    out = {**res, "peak_flops": peak, "floor_tok_s": floor_tok_s, "step_tok_s": step_tok_s}
    if torch_tok_s:
        out.update(torch_tok_s=torch_tok_s, best_ratio=floor_tok_s / torch_tok_s, step_ratio=step_tok_s / torch_tok_s)
        print(f"  PyTorch {torch_tok_s:.0f} tokens/s ({how}): the largest ratio with zero overhead outside the "
              f"products {floor_tok_s / torch_tok_s:.2f}x (this process's real step: {step_tok_s / torch_tok_s:.2f}x)")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the floor section's child process (see profile_step.py)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    child(a.config, a.reps)
