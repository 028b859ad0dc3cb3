"""Run under ``mpiexec -n N python tests/distributed_worker.py CASE``: one scenario of
tests/test_distributed_mpi.py per CASE. Prints ``OK <rank>`` when its checks pass."""
from __future__ import annotations

import os
import signal
import sys
import time
from types import SimpleNamespace

import numpy as np

import tinyllm
from tinyllm.distributed import get_comm
from tinyllm.distributed.data_parallel import GradientAllreduce, broadcast_training_state
from tinyllm.models import build_model
from tinyllm.optim import AdamW


def small_model(seed: int):
    tinyllm.manual_seed(seed)
    model = build_model("gpt", dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0))
    return model, AdamW(model.parameters(), lr=0.1)


def fingerprint(model, opt) -> list:
    values = [float(np.asarray(p.data, dtype=np.float64).sum()) for p in model.parameters()]
    return values + [float(np.asarray(b, dtype=np.float64).sum()) for b in opt.param_buffers()] + \
        opt.step_counts().tolist()


def case_broadcast(comm) -> None:
    """Every rank starts from rank 0's weights, moments and step counts."""
    model, opt = small_model(seed=100 + comm.rank)            # different weights on every rank
    for buf in opt.param_buffers()[len(opt.param_groups):]:  # and different moments
        buf[...] = comm.rank + 1.0
    opt.set_step_counts(np.full(opt.step_counts().shape, 3 + comm.rank))
    root = fingerprint(model, opt) if comm.rank == 0 else None
    broadcast_training_state(model, opt, comm)
    everyone = comm.gather_json(fingerprint(model, opt))
    if comm.rank == 0:
        assert all(f == root for f in everyone), everyone
        assert len(set(map(tuple, everyone))) == 1


def case_mean(comm) -> None:
    """Rank r sets its gradients to r: after the all-reduce all hold (world-1)/2, twice in a row;
    a parameter without a gradient anywhere stays without; one with a gradient on one rank only
    is updated on every rank."""
    model, opt = small_model(seed=0)
    hook = GradientAllreduce(comm)
    params = model.parameters()
    unused, lonely = params[-1], params[-2]
    want = (comm.world - 1) / 2
    for round_ in range(2):
        for p in params:
            p.grad = np.full(p.shape, float(comm.rank), dtype=p.dtype)
        unused.grad = None
        if comm.rank != 1:
            lonely.grad = None                                # only rank 1 has one: its mean is 1/world
        trainer = SimpleNamespace(optimizer=opt, step_loss=float(comm.rank), _interrupts=0, interrupt_agreed=None)
        hook(trainer)
        assert trainer.step_loss == want and trainer.interrupt_agreed is False
        for p in params[:-2]:
            np.testing.assert_array_equal(p.grad, np.full(p.shape, want), err_msg=f"round {round_}")
        assert unused.grad is None
        np.testing.assert_array_equal(lonely.grad, np.full(lonely.shape, 1.0 / comm.world, dtype=lonely.dtype))
        before = unused.data.copy()
        opt.step()
        opt.zero_grad()
        np.testing.assert_array_equal(unused.data, before)
    everyone = comm.gather_json(fingerprint(model, opt))
    if comm.rank == 0:
        assert len(set(map(tuple, everyone))) == 1, "the ranks drifted apart"


def case_die(comm, how: str) -> None:
    """Rank 1 dies (SIGKILL) or exits with an error in the middle; the others wait in an all-reduce."""
    buf = np.zeros(4)
    for i in range(1000):
        if comm.rank == 1 and i == 3:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.exit(1)
        comm.allreduce_sum_(buf)
        time.sleep(0.01)


def main() -> None:
    comm = get_comm()
    case = sys.argv[1]
    if case in ("kill", "exit"):
        case_die(comm, case)
    else:
        {"broadcast": case_broadcast, "mean": case_mean}[case](comm)
    comm.settle()
    print(f"OK {comm.rank}", flush=True)


if __name__ == "__main__":
    main()
