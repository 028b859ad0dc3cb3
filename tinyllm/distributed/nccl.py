"""The GPU all-reduce over NCCL (``cupy.cuda.nccl``), for ranks that each drive their own GPU.

Set-up, once per run (:func:`attach`): rank 0 asks NCCL for a unique id, MPI
broadcasts its 128 bytes to every rank, and each rank joins the NCCL
communicator with its rank. From then on the gradient buffers are reduced
GPU to GPU on the current CUDA stream, queued behind the backward kernels
that wrote them: the host neither copies nor waits.

NCCL needs one GPU per rank (it refuses two ranks on one device). Where
ranks share GPUs, or ``TINYLLM_NCCL=0``, the MPI communicator stages device
buffers through host memory instead.

Untested here: the machine this was written on has no GPU. It follows
CuPy's documented API: ``NcclCommunicator(ndev, commId, rank)``,
``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` and
``bcast(buff, count, datatype, root, stream)``, all with raw device pointers.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

_ID_BYTES = 128      # NCCL_UNIQUE_ID_BYTES


def _nccl() -> Any:
    # The one CUDA library used outside tinyllm.backend: a communication library, not array code.
    return importlib.import_module("cupy.cuda.nccl")


def _id_to_bytes(uid: Any) -> np.ndarray:
    """A unique id (bytes in recent CuPy, a tuple of 128 signed chars in older ones) as 128 uint8."""
    if isinstance(uid, (bytes, bytearray)):
        return np.frombuffer(bytes(uid), dtype=np.uint8).copy()
    return np.asarray(uid, dtype=np.int8).view(np.uint8).copy()


def _id_from_bytes(raw: np.ndarray, like: Any) -> Any:
    """The id in the form this CuPy takes (that of its own ``get_unique_id()``, ``like``)."""
    if isinstance(like, (bytes, bytearray)):
        return raw.tobytes()
    return tuple(int(v) for v in raw.view(np.int8))


class NCCLAllreduce:
    """In-place sum and broadcast of contiguous CuPy arrays between the ranks of ``mpi`` (one GPU each)."""

    def __init__(self, mpi: Any) -> None:
        nccl = self.nccl = _nccl()
        self.cuda = importlib.import_module("cupy.cuda")
        mine = nccl.get_unique_id()                      # every rank learns the form; rank 0's id is used
        raw = _id_to_bytes(mine)
        if raw.size != _ID_BYTES:
            raise RuntimeError(f"NCCL unique id of {raw.size} bytes, expected {_ID_BYTES}")
        mpi.comm.Bcast(raw, root=0)
        self.comm = nccl.NcclCommunicator(mpi.world, _id_from_bytes(raw, mine), mpi.rank)
        self.types = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64}

    def _args(self, buf: Any) -> tuple:
        if not buf.flags.c_contiguous:
            raise ValueError("NCCL reduces contiguous buffers only (the flat gradient buffers are)")
        if buf.dtype not in self.types:
            raise TypeError(f"NCCL path: no NCCL type for {buf.dtype}")
        return buf.data.ptr, buf.size, self.types[buf.dtype], self.cuda.get_current_stream().ptr

    def allreduce_sum_(self, buf: Any) -> Any:
        ptr, n, dtype, stream = self._args(buf)
        self.comm.allReduce(ptr, ptr, n, dtype, self.nccl.NCCL_SUM, stream)
        return buf

    def broadcast_(self, buf: Any) -> Any:
        ptr, n, dtype, stream = self._args(buf)
        self.comm.bcast(ptr, n, dtype, 0, stream)
        return buf


def own_gpu_per_rank(mpi: Any) -> bool:
    """Whether the ranks on each machine are no more than its GPUs (then each has its own)."""
    from .. import backend  # noqa: PLC0415

    local = mpi.comm.Split_type(mpi.MPI.COMM_TYPE_SHARED)
    try:
        fits = local.Get_size() <= backend.gpu_count()
    finally:
        local.Free()
    flag = np.asarray([int(fits)], dtype=np.int64)
    mpi.comm.Allreduce(mpi.MPI.IN_PLACE, flag, op=mpi.MPI.MIN)   # every machine must fit
    return bool(flag[0])


def attach(mpi: Any) -> bool:
    """Give the MPI communicator an NCCL path for device buffers when every rank has its own GPU.

    Returns whether it did. Every rank must call it (it is collective).
    """
    if mpi.nccl is not None:
        return True
    wanted = os.environ.get("TINYLLM_NCCL", "1") != "0" and own_gpu_per_rank(mpi)
    if wanted:
        mpi.nccl = NCCLAllreduce(mpi)
    return wanted
