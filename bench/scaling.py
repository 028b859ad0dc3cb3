"""Data-parallel scaling on this machine: tokens/s at 1 and 2 ranks, and the all-reduce's cost.

    python bench/scaling.py                      # the nano config, 3 runs of each setting, alternated
    python bench/scaling.py --config small --steps 6 --runs 1

Three settings on the same cores, each a fresh ``mpiexec`` (or plain) process
group, alternated run by run so machine noise hits all alike:

* ``1 rank x 1 thread``: one process, one BLAS thread (the per-core baseline);
* ``1 rank x 2 threads``: one process using both cores (what a user runs today);
* ``2 ranks x 1 thread``: ``mpiexec -n 2``, one BLAS thread each, the batch split in two.

Each rank does forward, backward, the gradient all-reduce hook, clipping and
AdamW on micro-batches of ``batch_size`` sequences; tokens/s counts every
rank's tokens. Reported: tokens/s (median over runs), scaling efficiency
``tok/s(2 ranks) / (2 x tok/s(1 rank x 1 thread))`` and against one rank on
both cores, and the all-reduce seconds per step. Then, separately, the
all-reduce of the flat gradient buffer of a ~10M-parameter GPT (n_layer 6,
n_embd 384), timed on its own between 2 ranks: milliseconds per step and the
bandwidth it implies.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402,F401  (OPENBLAS_THREAD_TIMEOUT before NumPy loads)

CONFIGS = {
    "nano": dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, batch_size=12),
    "small": dict(vocab_size=65, block_size=128, n_layer=6, n_head=6, n_embd=384, batch_size=8),  # ~10.7M
}
TEN_M = CONFIGS["small"]


def build(cfg: dict):
    import tinyllm  # noqa: PLC0415
    from tinyllm.models import build_model  # noqa: PLC0415
    from tinyllm.optim import configure_adamw  # noqa: PLC0415

    tinyllm.manual_seed(0)
    shape = {k: v for k, v in cfg.items() if k != "batch_size"}
    model = build_model("gpt", {**shape, "dropout": 0.0})
    return model, configure_adamw(model, 1e-3, 0.1, betas=(0.9, 0.99))


def worker_train(cfg: dict, steps: int, warmup: int) -> None:
    """One rank's timed training steps; rank 0 prints a JSON line."""
    import numpy as np  # noqa: PLC0415

    from tinyllm.distributed import get_comm  # noqa: PLC0415
    from tinyllm.distributed.data_parallel import GradientAllreduce, broadcast_training_state  # noqa: PLC0415
    from tinyllm.train.data import LMSource  # noqa: PLC0415

    comm = get_comm()
    model, opt = build(cfg)
    broadcast_training_state(model, opt, comm)
    tokens = np.random.default_rng(1).integers(0, cfg["vocab_size"], size=200_000)
    source = LMSource(tokens, cfg["block_size"], cfg["batch_size"], seed=2, shard=comm.shard)
    hook = GradientAllreduce(comm)
    trainer = SimpleNamespace(optimizer=opt, step_loss=0.0, _interrupts=0, interrupt_agreed=False)

    def step() -> None:
        _, loss = model(**source.next())
        loss.backward()
        trainer.step_loss = float(loss.data)
        if comm.world > 1:
            hook(trainer)
        opt.clip_grad_norm_(1.0)
        opt.step()
        opt.zero_grad()

    for _ in range(warmup):
        step()
    comm.barrier()
    hook.seconds = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    comm.barrier()
    dt = time.perf_counter() - t0
    if comm.rank == 0:
        tok = comm.world * cfg["batch_size"] * cfg["block_size"] * steps
        print(json.dumps({"tok_s": tok / dt, "allreduce_s_per_step": hook.seconds / steps}), flush=True)
    comm.settle()


def worker_allreduce(reps: int) -> None:
    """The all-reduce (mean) of a ~10M-parameter model's gradient buffers, timed alone."""
    import numpy as np  # noqa: PLC0415

    from tinyllm.distributed import get_comm  # noqa: PLC0415

    comm = get_comm()
    model, opt = build(TEN_M)
    for p in model.parameters():
        p.grad = np.ones(p.shape, dtype=p.dtype)
    buffers = opt.grad_buffers()
    times = []
    for _ in range(reps + 2):
        comm.barrier()
        t0 = time.perf_counter()
        for buf in buffers:
            comm.allreduce_mean_(buf)
        times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        n = sum(b.size for b in buffers)
        nbytes = sum(b.nbytes for b in buffers)
        t = statistics.median(times[2:])
        print(json.dumps({"params": n, "bytes": nbytes, "seconds": t, "buffers": len(buffers),
                          "bus_gb_s": 2 * (comm.world - 1) / comm.world * nbytes / t / 1e9}), flush=True)
    comm.settle()


def launch(nproc: int, threads: int, args: list[str]) -> dict:
    from tinyllm.distributed.launch import find_mpiexec  # noqa: PLC0415

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, *args]
    if nproc > 1:
        cmd = [find_mpiexec(), "-n", str(nproc), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="nano")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10, help="all-reduce repetitions of the 10M buffer")
    ap.add_argument("--worker", choices=["train", "allreduce"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    cfg = CONFIGS[a.config]
    if a.worker == "train":
        return worker_train(cfg, a.steps, a.warmup)
    if a.worker == "allreduce":
        return worker_allreduce(a.reps)

    settings = {"1 rank x 1 thread": (1, 1), "1 rank x 2 threads": (1, 2), "2 ranks x 1 thread": (2, 1)}
    results: dict[str, list] = {name: [] for name in settings}
    for r in range(a.runs):
        order = list(settings.items())
        for name, (nproc, threads) in order[r % 3:] + order[:r % 3]:
            results[name].append(launch(nproc, threads, ["--worker", "train", "--config", a.config,
                                                         "--steps", str(a.steps), "--warmup", str(a.warmup)]))
    med = {name: statistics.median(x["tok_s"] for x in rs) for name, rs in results.items()}
    spread = {name: (min(x["tok_s"] for x in rs), max(x["tok_s"] for x in rs)) for name, rs in results.items()}
    print(f"config {a.config} {cfg}, {a.steps} timed steps, {a.runs} runs per setting (median, min-max)")
    for name in settings:
        lo, hi = spread[name]
        print(f"  {name:<20} {med[name]:>9,.0f} tok/s   ({lo:,.0f} - {hi:,.0f})")
    two = med["2 ranks x 1 thread"]
    ar = statistics.median(x["allreduce_s_per_step"] for x in results["2 ranks x 1 thread"])
    print(f"  scaling efficiency, 2 ranks vs 2 x (1 rank x 1 thread): {two / (2 * med['1 rank x 1 thread']):.0%}")
    print(f"  2 ranks vs 1 rank on both cores:                      {two / med['1 rank x 2 threads']:.2f}x")
    print(f"  all-reduce hook at 2 ranks: {ar * 1e3:.2f} ms per step")
    res = launch(2, 1, ["--worker", "allreduce", "--reps", str(a.reps)])
    print(f"all-reduce of a {res['params'] / 1e6:.1f}M-parameter GPT's gradients ({res['bytes'] / 1e6:.0f} MB float32, "
          f"{res['buffers']} buffer(s)) between 2 ranks: {res['seconds'] * 1e3:.1f} ms per step, "
          f"bus bandwidth {res['bus_gb_s']:.1f} GB/s")


if __name__ == "__main__":
    main()
