"""The seams data-parallel training builds on, in one process: sharded batch sources, the trainer
hook, rank-aware output, the one-process communicator and set_backend(..., device=N)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinyllm import backend
from tinyllm.data import CharTokenizer
from tinyllm.distributed import SingleProcess, get_comm, is_main, rank, world
from tinyllm.train import pretrain
from tinyllm.train.data import ExampleSource, LMSource, MLMSource
from tinyllm.train.metrics import MetricsLog

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 30
TOK = CharTokenizer.from_text(TEXT, special_tokens=("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
IDS = np.asarray(TOK.encode(TEXT))
SOURCES = {
    "lm": lambda shard: LMSource(IDS, 8, 3, seed=1, shard=shard),
    "mlm": lambda shard: MLMSource(IDS, 8, 3, 1, TOK, 0.3, shard=shard),
    "examples": lambda shard: ExampleSource({"x": np.arange(10), "y": np.arange(10) * 2}, 3, seed=1, shard=shard),
}


@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_the_single_process_stream_dealt_round_robin(kind: str, world: int) -> None:
    single = SOURCES[kind]((0, 1))
    stream = [single.next() for _ in range(4 * world)]
    for r in range(world):
        mine = SOURCES[kind]((r, world))
        for k in range(4):                                   # call k on rank r: micro-batch k*world + r
            got, want = mine.next(), stream[k * world + r]
            assert all(np.array_equal(got[key], want[key]) for key in want)
        assert json.dumps(mine.state_dict()) == json.dumps(single.state_dict())   # one global position


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_sharded_position_resumes_on_another_number_of_ranks(kind: str) -> None:
    two = [SOURCES[kind]((r, 2)) for r in range(2)]
    for src in two:
        for _ in range(3):
            src.next()
    one = SOURCES[kind]((0, 1))
    one.load_state_dict(json.loads(json.dumps(two[0].state_dict())))
    nexts = [src.next() for src in two]
    for want in nexts:
        got = one.next()
        assert all(np.array_equal(got[key], want[key]) for key in want)


@pytest.mark.parametrize("shard, message", [((2, 2), "0 <= rank < world"), ((0, 0), "0 <= rank < world"),
                                            ((0.5, 2), "two integers"), (3, "a pair")])
def test_a_bad_shard_is_one_clear_error(shard, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LMSource(IDS, 8, 3, seed=1, shard=shard)


def test_without_mpi_the_communicator_is_one_process() -> None:
    comm = get_comm()
    assert isinstance(comm, SingleProcess)
    assert (rank(), world(), is_main(), comm.shard) == (0, 1, True, (0, 1))
    buf = np.arange(3.0)
    assert comm.allreduce_mean_(buf) is buf and buf.tolist() == [0.0, 1.0, 2.0]
    assert comm.gather_json({"a": [1]}) == [{"a": [1]}]


def test_metrics_log_of_a_non_writing_rank_keeps_records_in_memory(tmp_path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl", write=False)
    log.write({"iter": 1, "loss": 2.0})
    assert log.records == [{"iter": 1, "loss": 2.0}] and not (tmp_path / "metrics.jsonl").exists()


def test_trainer_hooks_run_between_backward_and_the_update(tmp_path, monkeypatch) -> None:
    from tinyllm.train import loop

    seen = []

    def hook(trainer) -> None:
        (buf,) = trainer.optimizer.grad_buffers()[:1]
        seen.append((trainer.iteration, float(np.abs(buf).sum()) > 0, trainer.step_loss))
        trainer.step_loss = 1.25                             # what the loop logs from here on

    real_init = loop.Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs, hooks=[hook])
    monkeypatch.setattr(loop.Trainer, "__init__", init)
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = pretrain(dict(data=str(corpus), preset="tiny", n_layer=1, n_head=2, n_embd=16, block_size=16,
                        batch_size=2, iters=3, eval_interval=3, eval_iters=1, log_interval=1, sample_tokens=0),
                   out=str(tmp_path / "run"))
    assert [it for it, _, _ in seen] == [0, 1, 2]            # before the step's iteration counts
    assert all(has_grad and np.isfinite(loss) for _, has_grad, loss in seen)
    assert [r["loss"] for r in out.result.records] == [1.25] * 3


def test_set_backend_device_needs_cupy_and_a_real_gpu() -> None:
    with pytest.raises(backend.BackendError, match="needs the 'cupy' backend"):
        backend.set_backend("numpy", device=0)
    with pytest.raises(backend.BackendError, match="GPU number"):
        backend.set_backend("numpy", device=-1)
    assert backend.get_backend() == "numpy"
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(backend.BackendError):
            backend.set_backend("cupy", device=0)
        assert backend.get_backend() == "numpy"
        return
    count = backend.gpu_count()
    with pytest.raises(backend.BackendError, match="does not exist"):
        backend.set_backend("cupy", device=count)
    backend.set_backend("numpy")


def test_resumed_grad_accum_keeps_the_global_micro_batches() -> None:
    from tinyllm.distributed.data_parallel import resumed_grad_accum

    assert resumed_grad_accum({}, 3, 1) == 3                          # a single-process checkpoint
    assert resumed_grad_accum({"world": 2, "grad_accum": 1}, 1, 1) == 2   # 2 ranks x 1 -> 1 x 2
    assert resumed_grad_accum({"world": 1, "grad_accum": 4}, 4, 2) == 2
    with pytest.raises(ValueError, match="3 micro-batches per step .* 2 processes cannot share"):
        resumed_grad_accum({"world": 3, "grad_accum": 1}, 1, 2)
    with pytest.raises(ValueError, match="integers >= 1"):
        resumed_grad_accum({"world": "2", "grad_accum": 1}, 1, 1)


def test_an_unsharded_source_on_several_ranks_is_refused() -> None:
    from tinyllm.distributed.data_parallel import check_sharded

    class TwoRanks(SingleProcess):
        rank, world = 1, 2

    with pytest.raises(ValueError, match=r"shard \(0, 1\) but this process is rank 1 of 2"):
        check_sharded(SOURCES["lm"]((0, 1)), TwoRanks())
    check_sharded(SOURCES["lm"]((1, 2)), TwoRanks())


def test_nproc_command_line_and_its_errors(monkeypatch) -> None:
    from tinyllm.distributed import launch

    assert launch.strip_nproc(["train", "--nproc", "2", "--iters", "5"]) == (2, ["train", "--iters", "5"])
    assert launch.strip_nproc(["train", "--nproc=3"]) == (3, ["train"])
    with pytest.raises(ValueError, match="works from the command line"):
        launch.strip_nproc(["train"])
    cmd = launch.mpiexec_command(2, ["train", "--iters", "5"], mpiexec="/opt/mpi/bin/mpiexec")
    assert cmd[:3] == ["/opt/mpi/bin/mpiexec", "-n", "2"] and cmd[-3:] == ["train", "--iters", "5"]
    with pytest.raises(ValueError, match="at least 1"):
        launch.launch(0, ["train", "--nproc", "0"])
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(ValueError, match="not both"):
        launch.launch(2, ["train", "--nproc", "2"])


def test_each_rank_takes_back_its_own_dropout_stream_on_resume() -> None:
    from tinyllm.distributed.data_parallel import rank_seed, restore_rank_rng

    class Rank(SingleProcess):
        def __init__(self, r: int) -> None:
            self.rank, self.world = r, 3

    backend.manual_seed(5)
    states = []
    for r in range(2):                                       # the checkpoint of a 2-rank run
        backend.manual_seed(rank_seed(5, r))
        backend.rng(np).random(3)
        states.append(backend.get_rng_state())
    draws = []
    for r in (1, 2):                                         # resumed on 3 ranks
        backend.set_rng_state(states[0])                     # what every rank restores from state["rng"]
        restore_rank_rng({"rank_rng": states, "iteration": 4}, Rank(r))
        draws.append(backend.rng(np).random(2))
    backend.set_rng_state(states[1])
    np.testing.assert_array_equal(draws[0], backend.rng(np).random(2))   # rank 1: its own stream
    assert not np.array_equal(draws[1], draws[0])                        # rank 2: a new one of its own
    assert rank_seed(5, 0) == 5 and rank_seed(5, 1) != rank_seed(5, 2)
    backend.manual_seed(0)


def test_nccl_plumbing_with_a_stand_in_for_cupy(monkeypatch) -> None:
    """No GPU here: a stand-in for cupy.cuda.nccl records what the NCCL path asks of it."""
    from types import SimpleNamespace

    from tinyllm.distributed import nccl

    calls = []

    class Communicator:
        def __init__(self, ndev, uid, rank):
            calls.append(("init", ndev, uid, rank))

        def allReduce(self, send, recv, n, dtype, op, stream):
            calls.append(("allReduce", send == recv, n, dtype, op, stream))

        def bcast(self, ptr, n, dtype, root, stream):
            calls.append(("bcast", n, dtype, root))

    fake = SimpleNamespace(get_unique_id=lambda: tuple(range(-64, 64)), NcclCommunicator=Communicator,
                           NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0)
    cuda = SimpleNamespace(get_current_stream=lambda: SimpleNamespace(ptr=1234))
    monkeypatch.setattr(nccl, "_nccl", lambda: fake)
    monkeypatch.setattr(nccl.importlib, "import_module", lambda name: cuda)
    sent = []
    mpi = SimpleNamespace(world=2, rank=1, comm=SimpleNamespace(Bcast=lambda buf, root: sent.append(buf.copy())))
    path = nccl.NCCLAllreduce(mpi)
    assert calls[0] == ("init", 2, tuple(range(-64, 64)), 1) and sent[0].size == 128

    class Buf:                                               # the attributes of a CuPy array NCCL reads
        def __init__(self, dtype, contiguous=True):
            self.dtype, self.size = np.dtype(dtype), 10
            self.flags = SimpleNamespace(c_contiguous=contiguous)
            self.data = SimpleNamespace(ptr=99)

    path.allreduce_sum_(Buf(np.float32))
    path.broadcast_(Buf(np.float64))
    assert calls[1:] == [("allReduce", True, 10, 7, 0, 1234), ("bcast", 10, 8, 0)]
    with pytest.raises(ValueError, match="contiguous"):
        path.allreduce_sum_(Buf(np.float32, contiguous=False))
    with pytest.raises(TypeError, match="no NCCL type"):
        path.allreduce_sum_(Buf(np.int64))
