"""Where a training step's time goes: seconds per step in each Function's
forward and backward, plus the optimizer, for one of bench/train.py's configs.

    python bench/profile_step.py --config nano
    python bench/profile_step.py --config large --steps 5

Every ``Function.forward``/``backward`` is wrapped with a timer (a few
microseconds each, so totals run a little over the real step time).
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402,F401  (OMP_WAIT_POLICY before any OpenMP library loads)
from train import CONFIGS, batches, build_tinyllm  # noqa: E402


def instrument(registry: dict, totals: dict) -> None:
    """Wrap forward and backward of every registered Function with a timer."""
    def wrap(cls, name):
        fn = getattr(cls, name)

        def timed(self, *a, **k):
            t = time.perf_counter()
            out = fn(self, *a, **k)
            totals[f"{cls.__name__}.{name}"] += time.perf_counter() - t
            return out
        setattr(cls, name, timed)
    for cls in set(registry.values()):
        if "forward" in cls.__dict__:
            wrap(cls, "forward")
        if "backward" in cls.__dict__:
            wrap(cls, "backward")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="nano")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    import tinyllm
    from tinyllm.tensor import OP_REGISTRY
    cfg = CONFIGS[args.config]
    model, _, opt = build_tinyllm(cfg)
    totals: dict = collections.defaultdict(float)
    instrument(OP_REGISTRY, totals)
    data = batches(cfg, args.steps + 2)
    phases = collections.defaultdict(float)
    for i, (x, y) in enumerate(data):
        if i == 2:
            totals.clear()
            phases.clear()
        t0 = time.perf_counter()
        _, loss = model(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.clip_grad_norm_(1.0)
        opt.step()
        opt.zero_grad()
        t3 = time.perf_counter()
        phases["forward"] += t1 - t0
        phases["backward"] += t2 - t1
        phases["clip + AdamW"] += t3 - t2
    n = args.steps
    step = sum(phases.values()) / n
    print(f"config {args.config}: {step * 1e3:.1f} ms/step "
          f"({cfg['batch_size'] * cfg['block_size'] / step:.0f} tokens/s, timers included)")
    for k, v in phases.items():
        print(f"  {k:28} {v / n * 1e3:8.2f} ms")
    print(f"{'Function':34} {'ms/step':>8} {'share':>6}")
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        if v / n >= 5e-5:
            print(f"  {k:32} {v / n * 1e3:8.2f} {v / n / step:6.1%}")
    _ = tinyllm


if __name__ == "__main__":
    main()
