"""Data-parallel training: a communicator over MPI (mpi4py), NCCL between GPUs, rank-aware helpers.

Every process (a *rank*) holds the whole model, draws its own shard of each
global batch, computes its gradients, and then all ranks average them with
one all-reduce per flat gradient buffer, so every rank applies the same
update to the same weights (ChainerMN's design). With no MPI launcher around,
:func:`get_comm` is a one-process communicator (rank 0, world 1) whose
collectives do nothing, and training is the plain single-process loop.

- ``comm``: :class:`Communicator` (the interface), :class:`SingleProcess`,
  :class:`MPICommunicator`; :func:`get_comm`, :func:`rank`, :func:`world`, :func:`is_main`
- ``data_parallel``: broadcast of the training state from rank 0, the
  gradient all-reduce as a trainer hook, sharded evaluation
- ``nccl``: the GPU all-reduce over ``cupy.cuda.nccl``
- ``launch``: ``tinyllm train --nproc N`` starts ``mpiexec`` itself
"""
from .comm import (Communicator, MPICommunicator, SingleProcess, get_comm, gpu_of_this_rank, is_main, local_rank,
                   rank, world)

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "get_comm", "rank", "world", "is_main",
           "local_rank", "gpu_of_this_rank"]
