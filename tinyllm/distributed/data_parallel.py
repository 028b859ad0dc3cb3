"""Data parallelism for the training loop: start together, average the gradients, agree on stopping.

The trainer (:class:`tinyllm.train.loop.Trainer`) calls these when its
communicator has more than one rank:

* :func:`start_together`: every rank takes rank 0's weights, optimizer moments
  and step counts (one broadcast per flat buffer), and its own dropout stream;
* :class:`GradientAllreduce`: the hook between backward and the update. One
  small all-reduce carries the step's loss, the "interrupted" flags and which
  parameters have a gradient; then one in-place all-reduce (mean) per flat
  gradient buffer. Afterwards every rank holds

      g = (1/world) Σ_r g_r,   g_r = (1/a) Σ_{micro-batches m of rank r} ∇L_m,

  the gradient of the mean loss over all ``a * world`` micro-batches: what one
  process accumulating ``a * world`` micro-batches computes. Clipping, the
  divergence check, the update and early stopping then see the same numbers on
  every rank, so the ranks stay identical without further messages.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .. import backend
from .comm import Communicator


def check_sharded(source: Any, comm: Communicator) -> None:
    """Refuse a batch source that would give every rank the same batches."""
    shard = getattr(source, "shard", None)
    if shard is None or tuple(shard) != comm.shard:
        raise ValueError(f"the batch source draws shard {shard} but this process is rank {comm.rank} of "
                         f"{comm.world}: build it with shard=comm.shard")


def _frozen_parameters(model: Any, optimizer: Any) -> list:
    """The model's parameters that the optimizer does not hold (frozen ones)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    params = model.parameters() if hasattr(model, "parameters") else []
    return [p for p in params if id(p) not in held]


def broadcast_training_state(model: Any, optimizer: Any, comm: Communicator) -> None:
    """Make every rank's weights, moments and step counts those of rank 0 (in place)."""
    for buf in optimizer.param_buffers():
        comm.broadcast_(buf)
    for p in _frozen_parameters(model, optimizer):
        comm.broadcast_(p.data)
    counts = optimizer.step_counts()
    comm.broadcast_(counts)
    optimizer.set_step_counts(counts)


def resumed_grad_accum(state: dict, grad_accum: int, world: int) -> int:
    """Micro-batches per step on each of ``world`` ranks that keep a checkpoint's global count.

    ``state`` (``state.json``) records the ``world`` and per-rank ``grad_accum``
    that wrote it (absent: one process with ``grad_accum``). The global count
    ``world x grad_accum`` is what the run's steps mean; a resumed run keeps it.
    """
    saved_world, saved_accum = state.get("world", 1), state.get("grad_accum", grad_accum)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (saved_world, saved_accum)):
        raise ValueError(f"world {saved_world!r} and grad_accum {saved_accum!r} must be integers >= 1")
    total = saved_world * saved_accum
    if total % world:
        raise ValueError(f"the run took {total} micro-batches per step ({saved_world} process(es) x "
                         f"{saved_accum}), which {world} processes cannot share equally")
    return total // world


def rank_seed(seed: int, rank: int) -> int:
    """The dropout seed of ``rank``: rank 0 keeps the run's seed, the others get their own."""
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1)[0]) if rank else int(seed)


def start_together(trainer: Any) -> None:
    """Before the first step: rank 0's state everywhere; on a fresh run, a dropout stream per rank."""
    comm = trainer.comm
    if hasattr(comm, "active"):
        comm.active = True                              # from here on, a lone exit must end the others
    if backend.get_backend() == "cupy" and hasattr(comm, "nccl"):
        from .nccl import attach  # noqa: PLC0415

        attach(comm)                                    # GPU to GPU when each rank has its own
    broadcast_training_state(trainer.model, trainer.optimizer, comm)
    if not trainer.resumed and comm.rank:
        backend.manual_seed(rank_seed(backend.get_rng_state()["seed"], comm.rank))


def restore_rank_rng(state: dict, comm: Communicator) -> None:
    """On resume, each rank takes back its own generator state from ``state["rank_rng"]``.

    A checkpoint written by fewer ranks has no entry for the new ones: they
    start a stream of their own from the seed and the iteration.
    """
    from ..checkpoint import CheckpointError  # noqa: PLC0415

    states = state.get("rank_rng")
    if comm.rank == 0:
        return                                           # state["rng"] is rank 0's, already restored
    try:
        if isinstance(states, list) and comm.rank < len(states) and isinstance(states[comm.rank], dict):
            backend.set_rng_state(states[comm.rank])
        else:
            seed = backend.get_rng_state()["seed"] or 0
            backend.manual_seed(rank_seed(seed * 1_000_003 + int(state["iteration"]), comm.rank))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot restore the random state of rank {comm.rank}: {exc}") from None


class GradientAllreduce:
    """The trainer hook that averages the gradients of all ranks (see the module docstring).

    Attributes:
        seconds: time spent in the all-reduces so far (for ``bench/scaling.py``).
    """

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm
        self.seconds = 0.0

    def __call__(self, trainer: Any) -> None:
        comm, opt = self.comm, trainer.optimizer
        t0 = time.perf_counter()
        buffers = opt.grad_buffers()
        # one small message: [loss, interrupted, has-gradient per parameter], summed over the ranks
        info = np.concatenate([[float(trainer.step_loss), float(trainer._interrupts > 0)],
                               opt.grad_mask()]).astype(np.float64)
        comm.allreduce_sum_(info)
        trainer.step_loss = float(info[0]) / comm.world
        trainer.interrupt_agreed = bool(info[1] > 0)
        opt.bind_grads(info[2:] > 0)          # a gradient on any rank: every rank updates the parameter
        for buf in buffers:
            comm.allreduce_mean_(buf)
        self.seconds += time.perf_counter() - t0
