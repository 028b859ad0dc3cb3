"""Communicators: who am I (rank), how many are we (world), and the collectives training needs.

A communicator offers in-place collectives on flat arrays (NumPy, or CuPy
where the communicator can reach the GPU):

* ``allreduce_mean_(buf)``: ``buf <- (1/world) Σ_ranks buf`` (the gradients);
* ``allreduce_sum_(buf)``: ``buf <- Σ_ranks buf`` (evaluation sums, flags);
* ``broadcast_(buf)``: ``buf <- buf of rank 0`` (weights and moments);
* ``gather_json(obj)``: rank 0 gets every rank's JSON-able ``obj`` (RNG states).

:class:`SingleProcess` is the communicator of a run without MPI: rank 0 of 1,
every collective a no-op. :class:`MPICommunicator` runs them over ``mpi4py``:
``Allreduce`` with ``MPI.IN_PLACE`` (one message per buffer, never one per
parameter) and ``Bcast``. CuPy buffers are staged through host memory unless
an NCCL communicator is attached (:mod:`tinyllm.distributed.nccl`).
"""
from __future__ import annotations

import abc
import atexit
import json
import os
import sys
import time
from typing import Any

import numpy as np

# Environment variables that MPI launchers set in every process they start.
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_RANK")


class Communicator(abc.ABC):
    """The interface: ``rank``, ``world`` and in-place collectives (see the module docstring)."""

    rank: int = 0
    world: int = 1

    def settle(self) -> None:  # noqa: B027  (a no-op for one process; the MPI communicator overrides it)
        """Say that the ranks have left their collectives together (training ended or stopped on all)."""

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world)``, what a batch source takes to draw this rank's part of each batch."""
        return (self.rank, self.world)

    @abc.abstractmethod
    def allreduce_mean_(self, buf: Any) -> Any:
        """See the module docstring."""

    @abc.abstractmethod
    def allreduce_sum_(self, buf: Any) -> Any:
        """See the module docstring."""

    @abc.abstractmethod
    def broadcast_(self, buf: Any) -> Any:
        """See the module docstring."""

    @abc.abstractmethod
    def gather_json(self, obj: Any) -> list | None:
        """See the module docstring."""

    @abc.abstractmethod
    def barrier(self) -> None:
        """See the module docstring."""


class SingleProcess(Communicator):
    """One process: rank 0 of a world of 1; the collectives return their input unchanged."""

    def allreduce_mean_(self, buf: Any) -> Any:
        return buf

    def allreduce_sum_(self, buf: Any) -> Any:
        return buf

    def broadcast_(self, buf: Any) -> Any:
        return buf

    def gather_json(self, obj: Any) -> list:
        return [json.loads(json.dumps(obj))]

    def barrier(self) -> None:
        return None


class MPICommunicator(Communicator):
    """Collectives over an ``mpi4py`` communicator (``MPI.COMM_WORLD`` by default).

    Host (NumPy) buffers go to MPI directly. Device (CuPy) buffers go to
    :attr:`nccl` when one is attached (each rank on its own GPU), else through
    a host copy: ``to_numpy -> Allreduce -> copy back`` (correct everywhere,
    and what a CUDA-unaware MPI needs).

    **No hangs.** A rank that dies from a signal (SIGKILL) is noticed by
    ``mpiexec``, which ends the others. A rank that *exits* on its own (an
    error only it met) would leave the others waiting in their next
    collective forever. So a rank that exits without having :meth:`settle`-d
    waits at most ``TINYLLM_MPI_EXIT_TIMEOUT`` seconds (default 10) for the
    others in a barrier of a communicator kept for this alone: if they all
    arrive (the same error stopped everyone, say a missing data file), each
    exits with its own status; otherwise it calls ``MPI_Abort``, which ends
    every rank with a non-zero status.
    """

    def __init__(self, mpi_comm: Any = None) -> None:
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency: the [mpi] extra)

        self.MPI = MPI
        self.comm = mpi_comm if mpi_comm is not None else MPI.COMM_WORLD
        self.rank, self.world = self.comm.Get_rank(), self.comm.Get_size()
        self.nccl: Any = None       # a tinyllm.distributed.nccl.NCCLAllreduce, for CuPy buffers
        self.active = True          # inside collectives: leaving alone must end the others
        self._exit_comm = self.comm.Dup()   # its own context: never matched with a training collective
        atexit.register(self._abort_unless_settled)

    def settle(self) -> None:
        self.active = False

    def _abort_unless_settled(self) -> None:
        if not self.active or self.world == 1:
            return
        timeout = float(os.environ.get("TINYLLM_MPI_EXIT_TIMEOUT", "10"))
        request = self._exit_comm.Ibarrier()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if request.Test():
                return                                  # everyone is leaving: no one waits
            time.sleep(0.01)
        sys.stderr.write(f"tinyllm: rank {self.rank} is exiting while the other ranks still wait for it: "
                         "aborting them\n")
        sys.stderr.flush()
        self.comm.Abort(1)

    def _host(self, buf: Any, fn: Any) -> Any:
        """Run ``fn`` on a host copy of a device buffer and copy the result back."""
        if isinstance(buf, np.ndarray):
            fn(buf)
            return buf
        host = buf.get()
        fn(host)
        buf.set(host)
        return buf

    def allreduce_sum_(self, buf: Any) -> Any:
        if self.nccl is not None and not isinstance(buf, np.ndarray):
            return self.nccl.allreduce_sum_(buf)
        return self._host(buf, lambda a: self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM))

    def allreduce_mean_(self, buf: Any) -> Any:
        self.allreduce_sum_(buf)
        buf *= buf.dtype.type(1.0 / self.world)
        return buf

    def broadcast_(self, buf: Any) -> Any:
        if self.nccl is not None and not isinstance(buf, np.ndarray):
            return self.nccl.broadcast_(buf)
        return self._host(buf, lambda a: self.comm.Bcast(a, root=0))

    def gather_json(self, obj: Any) -> list | None:
        """Rank 0 gets ``[obj of rank 0, obj of rank 1, ...]``; the others get None.

        Sent as JSON text (bytes), so nothing received is unpickled.
        """
        data = np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)
        sizes = np.zeros(self.world, dtype=np.int64)
        self.comm.Allgather(np.asarray([data.size], dtype=np.int64), sizes)
        recv = np.empty(int(sizes.sum()), dtype=np.uint8) if self.rank == 0 else None
        self.comm.Gatherv(data, [recv, sizes] if self.rank == 0 else None, root=0)
        if self.rank != 0:
            return None
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return [json.loads(recv[a:b].tobytes().decode("utf-8")) for a, b in zip(offsets[:-1], offsets[1:])]

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank at once (a rank that failed alone must not leave the others waiting)."""
        self.comm.Abort(code)


_COMM: Communicator | None = None


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (``mpiexec``) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def get_comm() -> Communicator:
    """This process's communicator, made once.

    Under ``mpiexec`` with more than one process it is an
    :class:`MPICommunicator` over ``MPI.COMM_WORLD`` (mpi4py must be installed:
    ``pip install "tinyllm[mpi]"``); otherwise a :class:`SingleProcess`, and
    mpi4py is not even imported.
    """
    global _COMM
    if _COMM is None:
        size = next((os.environ[v] for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE") if v in os.environ), None)
        if launched_by_mpi() and size != "1":
            try:
                _COMM = MPICommunicator()
            except ImportError:
                raise RuntimeError("this process was started by mpiexec but mpi4py is not installed: "
                                   'pip install "tinyllm[mpi]"') from None
            if _COMM.world == 1:
                _COMM = SingleProcess()
        else:
            _COMM = SingleProcess()
    return _COMM


def local_rank() -> int:
    """This process's rank among the processes of its machine (the launchers say; else the rank)."""
    for var in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_LOCAL_RANK", "SLURM_LOCALID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return get_comm().rank


def gpu_of_this_rank(backend_name: str) -> int | None:
    """The GPU this rank should use: its local rank, modulo the GPUs there are (None: leave it).

    Only for the CuPy backend with more than one rank. With at least one GPU
    per rank every rank gets its own, and the gradients go over NCCL; with
    fewer, ranks share GPUs and the all-reduce stages through the host.
    """
    if backend_name.lower() != "cupy" or get_comm().world == 1:
        return None
    from .. import backend  # noqa: PLC0415

    count = backend.gpu_count()
    return local_rank() % count if count else None


def rank() -> int:
    """This process's rank (0 without MPI)."""
    return get_comm().rank


def world() -> int:
    """The number of processes training together (1 without MPI)."""
    return get_comm().world


def is_main() -> bool:
    """True on rank 0, the process that prints, writes metrics and saves checkpoints."""
    return get_comm().rank == 0
