"""The training-step workloads of ``train.py``, ``bert.py`` and ``classify.py`` on the harness.

A workload gives two builders, ``build_tinyllm(state) -> (model, step)`` and
``build_torch(state, device) -> (model, step)``, where ``step(*batch)`` runs
forward, backward, clipping and AdamW and returns the loss, and
``batches(n)``: n tuples of NumPy arrays, the same on both sides.
:func:`child` is a whole child process of such a workload (``setup`` writes
the tinyllm model's initial weights, which both contenders then load), and
:func:`compare` the whole parent side: alternated fresh processes, then the
check that both sides had as many parameters and the same losses.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import common
import harness

Builder = Callable[..., tuple[Any, Callable[..., Any]]]


def load_weights(path: str | None) -> dict | None:
    """The shared weights written by the setup process (no pickle)."""
    if path is None:
        return None
    import numpy as np  # noqa: PLC0415
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_weights(path: str, model: Any) -> None:
    """A tinyllm model's ``state_dict()`` as a ``.npz`` file."""
    import numpy as np  # noqa: PLC0415
    np.savez(path, **{k: common.tinyllm_to_numpy(v) for k, v in model.state_dict().items()})


def child(args: argparse.Namespace, build_tinyllm: Builder, build_torch: Builder,
          batches: Callable[[int], list], units_per_step: int,
          flops: Callable[[Any, str], int] | None = None, info: dict | None = None) -> None:
    """One child process of a training-step workload: setup, or the tinyllm or torch contender."""
    backend = getattr(args, "backend", "numpy")
    n = args.warmup + args.steps
    if args.child == "setup":
        harness.import_tinyllm(False)
        model, _ = build_tinyllm(None)
        save_weights(args.weights, model)
        harness.report({})
        return
    if args.child == "tinyllm":
        tinyllm = harness.import_tinyllm(args.import_numpy_first)
        tinyllm.set_backend(backend)
        model, step = build_tinyllm(load_weights(args.weights))
        data = [tuple(common.tinyllm_asarray(a) for a in b) for b in batches(n)]
        sync = tinyllm.synchronize
        n_params = model.num_parameters()
    else:
        import torch  # noqa: PLC0415
        device = "cuda" if backend == "cupy" else "cpu"
        model, step = build_torch(load_weights(args.weights), device)
        data = [tuple(torch.from_numpy(a).to(device) for a in b) for b in batches(n)]
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        n_params = sum(p.numel() for p in model.parameters())
    losses: list[float] = []
    times = harness.time_steps(lambda i: losses.append(float(step(*data[i]).item())), args.warmup, args.steps, sync)
    result = {**harness.throughput(times, units_per_step), **(info or {}), "units_per_step": units_per_step,
              "n_params": int(n_params), "losses": losses, "numpy_first": bool(args.import_numpy_first)}
    if flops is not None:
        result["flops_per_token"] = int(flops(model, args.child))
    harness.report(result)


def compare(script: str, argv: list[str], args: argparse.Namespace, title: str,
            unit: str = "tok/s") -> tuple[dict, list[harness.Contender]]:
    """Alternated fresh processes of both contenders; then the parameter counts and losses side by side."""
    summary, contenders = harness.compare_processes(script, argv, args, unit=unit, title=title)
    if len(contenders) >= 2:
        a, b = (c.results[0] for c in contenders[:2])
        summary["max_loss_diff"] = max(abs(x - y) for x, y in zip(a["losses"], b["losses"]))
        summary["first_losses"] = [a["losses"][0], b["losses"][0]]
        summary["n_params"] = [a["n_params"], b["n_params"]]
        print(f"  same start: losses at step 0 {a['losses'][0]:.6f} / {b['losses'][0]:.6f}, |difference| <= "
              f"{summary['max_loss_diff']:.2e} over {len(a['losses'])} steps; parameters "
              f"{a['n_params']:,} / {b['n_params']:,}" + ("" if a["n_params"] == b["n_params"] else "  (DIFFER)"))
    return summary, contenders
