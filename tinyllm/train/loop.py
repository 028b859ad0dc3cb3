"""The training loop: one readable step, evaluation, checkpoints, resume, early stopping.

One optimizer step, as :meth:`Trainer.step` does it::

    lr = schedule(it);  optimizer.set_lr(lr)          # warmup + cosine decay
    for each of grad_accum micro-batches:
        batch = source.next()                          # NumPy arrays on the host
        batch -> backend                               # once per micro-batch
        logits, loss = model(**batch)                  # forward
        (loss / grad_accum).backward()                 # gradients add up in .grad
    for hook in hooks: hook(trainer)                   # e.g. the all-reduce of the gradients
    clip the global gradient norm to grad_clip
    optimizer.step();  optimizer.zero_grad()

**Hooks.** ``Trainer(..., hooks=[f, ...])``: each ``f(trainer)`` runs after the
backward passes of a step and before clipping and the update; it may change
the gradients in place through ``trainer.optimizer.grad_buffers()`` and the
step's mean loss, ``trainer.step_loss``, which the loop then checks and logs.

**More than one process.** With a communicator of ``world > 1`` (``mpiexec``;
see :mod:`tinyllm.distributed`) the trainer adds the gradient all-reduce hook
(one all-reduce per flat gradient buffer, so every rank applies the mean
gradient), starts every rank from rank 0's weights and optimizer state,
splits the validation batches between the ranks and sums their results, and
only rank 0 prints, writes ``metrics.jsonl`` and saves checkpoints. Each rank
accumulates ``grad_accum`` micro-batches of its own shard (the batch source's
``shard=(rank, world)``), so a step sees ``grad_accum * world`` micro-batches:
the step of one process with ``grad_accum * world``. A checkpoint records that
global count, and a run resumed on another number of ranks keeps it.

Every ``eval_interval`` steps (and at the last one) the model is evaluated on
fixed validation batches (eval mode, no graph recorded), the ``latest``
checkpoint is written, ``best`` too when the validation loss improved, and
training stops early after ``early_stop`` evaluations without improvement.

**Exact resume.** A checkpoint holds everything the next step depends on:
weights, optimizer moments and step counts, the iteration (which fixes the
learning rate), the backend's random generators (dropout: NumPy's PCG64 and,
on CuPy, the counter-based GPU generator, whose seed and counter are saved)
and the batch source's position. A run resumed from iteration k therefore
computes bit for bit what the uninterrupted run computed after k, on either
backend. (With several ranks each rank's generator is saved, so a resume on
the same number of ranks is exact with dropout too.)

**Interrupts.** Ctrl-C (SIGINT) or SIGTERM lets the current step finish,
writes ``latest`` and raises :class:`TrainingInterrupted`; a second Ctrl-C stops
at once (``latest`` then holds the previous checkpoint, intact). A non-finite
loss, gradient norm or validation loss raises :class:`TrainingDiverged`
without saving, so ``latest`` keeps the last good state.

Testing hook: with the environment variable ``TINYLLM_KILL_AFTER_CHECKPOINT=k``
the process kills itself with SIGKILL right after writing a checkpoint at
iteration >= k (how the resume tests simulate a crash at a known point; with
several ranks rank 0 does, and ``mpiexec`` then ends the others).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import backend
from ..checkpoint import Checkpoint, CheckpointError, save_checkpoint
from ..distributed import Communicator, get_comm
from ..distributed.data_parallel import resumed_grad_accum
from .config import TrainConfig
from .interrupts import install_interrupt_handlers, restore_interrupt_handlers
from .metrics import MetricsLog, Progress, format_duration
from .validation import evaluate_batches, to_backend


class TrainingDiverged(RuntimeError):
    """The loss or the gradients stopped being finite numbers."""


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved and training stopped."""


@dataclass
class TrainResult:
    """How a run ended."""

    iteration: int
    best_val_loss: float | None
    last_val_loss: float | None
    stopped_early: bool
    seconds: float
    records: list = field(default_factory=list)


class Trainer:
    """Runs the loop for one model, optimizer, schedule and batch source.

    Args:
        model: returns ``(logits, loss)`` from ``model(**batch)``.
        optimizer: a ``tinyllm.optim`` optimizer over the model's trainable parameters.
        schedule: ``it -> lr``.
        source: the training batch source (see ``tinyllm.train.data``).
        val_batches: the fixed validation batches.
        cfg: the training settings (iters, grad_accum, eval_interval, ...).
        run_dir: where checkpoints and ``metrics.jsonl`` go.
        ckpt_config: the JSON saved as each checkpoint's ``config.json``.
        tokenizer_json: the tokenizer, saved with each checkpoint.
        tokens_per_batch: tokens in one micro-batch (for tokens/s).
        progress: where status and lines go.
        accuracy: also report accuracy on the validation batches (classifiers; MLM).
        resume_hint: the command that continues this run, shown after Ctrl-C.
        hooks: callables ``hook(trainer)`` run between the backward passes and the update.
        comm: the communicator (default: :func:`tinyllm.distributed.get_comm`, one
            process without MPI).
    """

    def __init__(self, model: Any, optimizer: Any, schedule: Callable[[int], float], source: Any,
                 val_batches: list[dict], cfg: TrainConfig, run_dir: str | os.PathLike, ckpt_config: dict,
                 tokenizer_json: str | None, tokens_per_batch: int, progress: Progress | None = None,
                 accuracy: bool = False, resume_hint: str = "", hooks: Sequence[Callable[[Any], None]] = (),
                 comm: Communicator | None = None) -> None:
        self.model, self.optimizer, self.schedule, self.source = model, optimizer, schedule, source
        self.val_batches, self.cfg, self.run_dir = val_batches, cfg, Path(run_dir)
        self.ckpt_config, self.tokenizer_json = ckpt_config, tokenizer_json
        self.tokens_per_batch, self.accuracy = tokens_per_batch, accuracy
        self.progress = progress or Progress()
        self.resume_hint = resume_hint or f"tinyllm train --out {self.run_dir} --resume"
        self.iteration = 0
        self.best_val_loss: float | None = None
        self.last_val_loss: float | None = None
        self.evals_since_best = 0
        self.elapsed_before = 0.0      # seconds spent by earlier sessions of a resumed run
        self.resumed = False
        self._interrupts = 0
        self._eval_steps, self._eval_time = 0, 0.0     # steps and seconds since the last evaluation
        self._unread: list = []        # GPU: (iteration, loss, grad norm) of steps not read yet
        self.comm = comm if comm is not None else get_comm()
        self.is_main = self.comm.rank == 0
        self.grad_accum = cfg.grad_accum   # micro-batches per step on this rank
        self.hooks = list(hooks)
        self.step_loss: Any = None     # the step's mean loss, as hooks see (and may replace) it
        self.interrupt_agreed = False  # several ranks: some rank was interrupted (set by the all-reduce)
        if self.comm.world > 1:
            from ..distributed.data_parallel import GradientAllreduce, check_sharded  # noqa: PLC0415

            check_sharded(source, self.comm)
            self.hooks.append(GradientAllreduce(self.comm))

    # ------------------------------------------------------------------ state
    def resume(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint: weights, optimizer, iteration, RNG and data position.

        Raises:
            CheckpointError: the checkpoint does not fit this model, optimizer or data.
        """
        if ckpt.optimizer is None:
            raise CheckpointError(f"checkpoint {ckpt.path} has no optimizer state to resume from")
        st = ckpt.state
        missing = [k for k in ("iteration", "rng", "data") if k not in st]
        if missing:
            raise CheckpointError(f"checkpoint {ckpt.path}: state.json has no {', '.join(missing)}")
        try:
            self.model.load_state_dict(ckpt.weights, strict=True)
            self.optimizer.load_state_dict(ckpt.optimizer)
            self.source.load_state_dict(st["data"])
            backend.set_rng_state(st["rng"])
            self.grad_accum = resumed_grad_accum(st, self.cfg.grad_accum, self.comm.world)
            self.iteration = int(st["iteration"])
            self.best_val_loss = st.get("best_val_loss")
            self.last_val_loss = st.get("last_val_loss")
            self.evals_since_best = int(st.get("evals_since_best", 0))
            self.elapsed_before = float(st.get("elapsed", 0.0))
        except KeyError as exc:
            what = exc.args[0] if exc.args else exc
            raise CheckpointError(f"cannot resume from {ckpt.path}: {what}") from None
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot resume from {ckpt.path}: {exc}") from None
        if self.comm.world > 1:
            from ..distributed.data_parallel import restore_rank_rng  # noqa: PLC0415

            restore_rank_rng(st, self.comm)
        self.resumed = True

    def state(self, elapsed: float) -> dict:
        """The JSON-able training state saved in ``state.json``."""
        out = {"iteration": self.iteration, "best_val_loss": self.best_val_loss,
               "last_val_loss": self.last_val_loss, "evals_since_best": self.evals_since_best,
               "elapsed": elapsed, "rng": backend.get_rng_state(), "data": self.source.state_dict(),
               "lr": self.schedule(self.iteration)}
        if self.comm.world > 1 or self.grad_accum != self.cfg.grad_accum:
            out.update(world=self.comm.world, grad_accum=self.grad_accum)
        return out

    def save(self, name: str, elapsed: float) -> Path:
        """Write checkpoint ``name`` (atomically; with several ranks, rank 0 writes it)."""
        state = self.state(elapsed)
        if self.comm.world > 1:
            state["rank_rng"] = self.comm.gather_json(state["rng"])   # every rank takes part
        if not self.is_main:
            return self.run_dir / name
        return save_checkpoint(self.run_dir, name, config=self.ckpt_config, weights=self.model.state_dict(),
                               tokenizer_json=self.tokenizer_json, optimizer=self.optimizer.state_dict(),
                               state=state)

    # ------------------------------------------------------------------ one step
    def step(self) -> tuple[Any, float]:
        """One optimizer step (with gradient accumulation); returns (mean loss, lr).

        On the CPU the loss is a float, checked at once. On the GPU nothing in
        the step waits for the device: the loss comes back as a 0-d device array
        and it, the gradient norm and the input checks are read later, by
        :meth:`_read_losses`, a few steps at a time.
        """
        cfg = self.cfg
        lr = self.schedule(self.iteration)
        self.optimizer.set_lr(lr)
        on_device = backend.get_backend() != "numpy"
        total = None
        accum = self.grad_accum
        with backend.deferred_checks() if on_device else contextlib.nullcontext():
            for _ in range(accum):
                batch = to_backend(self.source.next())
                _, loss = self.model(**batch)
                (loss if accum == 1 else loss * (1.0 / accum)).backward()
                total = loss.data if total is None else total + loss.data
            self.step_loss = total / accum if on_device else float(total) / accum
            for hook in self.hooks:
                hook(self)
            loss_value = self.step_loss
            if not on_device and not math.isfinite(loss_value):
                raise TrainingDiverged(self._diverged(f"the training loss is {loss_value}"))
            norm = None
            if cfg.grad_clip > 0:
                norm = self.optimizer.clip_grad_norm_(cfg.grad_clip, sync=not on_device)
                if not on_device and not math.isfinite(norm):
                    raise TrainingDiverged(self._diverged(f"the gradient norm is {norm}"))
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.iteration += 1
        if on_device:
            self._unread.append((self.iteration, loss_value, norm))
        return loss_value, lr

    def _read_losses(self) -> list[float]:
        """The losses of the steps not read yet, fetched from the GPU in one transfer; raises
        :class:`TrainingDiverged` naming the first step whose loss or gradient norm is not finite."""
        unread, self._unread = self._unread, []
        if not unread:
            return []
        xp = backend.xp()
        values = backend.to_numpy(xp.stack([xp.stack([xp.asarray(loss, dtype=xp.float64),
                                                      xp.asarray(0.0 if norm is None else norm, dtype=xp.float64)])
                                            for _, loss, norm in unread]))
        try:
            backend.raise_deferred()                                   # an out-of-range token id, say
        except IndexError as exc:
            raise TrainingDiverged(f"training stopped by a bad input at or before iteration "
                                   f"{unread[-1][0]}: {exc}") from None
        for (it, _, _), (loss, norm) in zip(unread, values):
            what = (f"the training loss is {loss}" if not math.isfinite(loss) else
                    f"the gradient norm is {norm}" if not math.isfinite(norm) else None)
            if what:
                self.iteration = it - 1                                # name the step that failed
                raise TrainingDiverged(self._diverged(what))
        return [float(v) for v in values[:, 0]]

    def _diverged(self, what: str) -> str:
        latest = self.run_dir / "latest"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written"
        return (f"training diverged at iteration {self.iteration + 1}: {what}; {kept}. "
                f"Try a smaller --lr (now {self.cfg.lr:g}) or --grad-clip")

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Mean loss (and accuracy) over the validation batches (see :func:`validation.evaluate_batches`)."""
        return evaluate_batches(self.model, self.val_batches, self.accuracy, self.comm)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        """Train from ``self.iteration`` to ``cfg.iters`` (or an early stop)."""
        log = MetricsLog(self.run_dir / "metrics.jsonl", resume_iter=self.iteration if self.resumed else None,
                         write=self.is_main)
        if self.comm.world > 1:
            from ..distributed.data_parallel import start_together  # noqa: PLC0415

            start_together(self)
        start = time.perf_counter()
        previous = install_interrupt_handlers(self._on_interrupt)
        try:
            # Overflow to inf/nan is caught as a diverged run, with a clear message; numpy's own
            # floating-point warnings would only add noise (and are errors under pytest).
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                stopped_early = self._loop(log, start)
        except TrainingInterrupted:
            self.comm.settle()                   # every rank stops after the same step
            raise
        except TrainingDiverged:
            if backend.get_backend() == "numpy":   # judged on all-reduced values: the same on every rank
                self.comm.settle()
            raise
        finally:
            restore_interrupt_handlers(previous)
            self.progress.clear()
        self.comm.settle()
        return TrainResult(self.iteration, self.best_val_loss, self.last_val_loss, stopped_early,
                           time.perf_counter() - start, log.records)

    def _loop(self, log: MetricsLog, start: float) -> bool:
        """Steps, status, metric records, evaluations; returns True if it stopped early.

        On the GPU the losses are read every ``log_interval`` steps (and before an
        evaluation or an interrupt), not after each step: reading one makes the
        CPU wait for the GPU, and the next step could not be queued meanwhile.
        """
        cfg = self.cfg
        start_iter = self.iteration
        on_device = backend.get_backend() != "numpy"
        window_loss, window_steps, window_time = 0.0, 0, 0.0      # since the last metrics record
        self._eval_steps, self._eval_time = 0, 0.0
        self.model.train()
        mark = time.perf_counter()                                 # training time is counted from here
        while self.iteration < cfg.iters:
            loss, lr = self.step()
            it = self.iteration
            is_eval = it % cfg.eval_interval == 0 or it == cfg.iters
            is_log = it % cfg.log_interval == 0 or is_eval
            if on_device and not (is_log or self.interrupted()):
                continue
            losses = self._read_losses() if on_device else [loss]
            now = time.perf_counter()
            dt, mark = now - mark, now
            window_loss, window_steps, window_time = window_loss + sum(losses), window_steps + len(losses), \
                window_time + dt
            self._eval_steps, self._eval_time = self._eval_steps + len(losses), self._eval_time + dt
            tok_s = self.tokens_per_step * window_steps / max(window_time, 1e-9)
            eta = (now - start) / (it - start_iter) * (cfg.iters - it)
            self.progress.status(f"iter {it}/{cfg.iters}  loss {losses[-1]:.4f}  lr {lr:.2e}  "
                                 f"{tok_s:,.0f} tok/s  ETA {format_duration(eta)}")
            record = None
            if is_log:
                record = {"iter": it, "loss": window_loss / window_steps, "val_loss": None, "lr": lr,
                          "tokens_per_sec": tok_s, "elapsed": self.elapsed_before + now - start}
                window_loss, window_steps, window_time = 0.0, 0, 0.0
            stop = self._eval_and_save(record, start, eta) if is_eval else False
            if record is not None:
                log.write(record)
            self._after_checkpoint(is_eval)
            if self.interrupted():
                self._save_interrupted(start, already_saved=is_eval)
            if stop:
                return True
            mark = time.perf_counter()                             # evaluating and saving is not training
        return False

    def _eval_and_save(self, record: dict, start: float, eta: float) -> bool:
        """Evaluate, save ``latest`` (and ``best``), print the eval line; return True to stop early."""
        cfg = self.cfg
        metrics = self.evaluate()
        val = metrics["val_loss"]
        if not math.isfinite(val):
            raise TrainingDiverged(self._diverged(f"the validation loss is {val}").replace(
                f"iteration {self.iteration + 1}", f"iteration {self.iteration}"))
        record.update(metrics)
        self.last_val_loss = val
        improved = self.best_val_loss is None or val < self.best_val_loss
        if improved:
            self.best_val_loss, self.evals_since_best = val, 0
        else:
            self.evals_since_best += 1
        elapsed = self.elapsed_before + time.perf_counter() - start
        self.save("latest", elapsed)
        if improved:
            self.save("best", elapsed)
        acc = f" | val acc {metrics['val_acc']:.1%}" if "val_acc" in metrics else ""
        tok_s = self.tokens_per_step * self._eval_steps / max(self._eval_time, 1e-9)
        self._eval_steps, self._eval_time = 0, 0.0
        eta_text = f", ETA {format_duration(eta)}" if self.iteration < cfg.iters else ""
        self.progress.line(f"iter {self.iteration:>{len(str(cfg.iters))}}/{cfg.iters} | loss {record['loss']:.4f} | "
                           f"val {val:.4f}{acc} | lr {record['lr']:.2e} | {tok_s:,.0f} tok/s | "
                           f"{format_duration(elapsed)}{eta_text}{' | best' if improved else ''}")
        if cfg.early_stop and self.evals_since_best >= cfg.early_stop:
            self.progress.line(f"early stop: no val improvement in {cfg.early_stop} evaluations "
                               f"(best {self.best_val_loss:.4f})")
            return True
        return False

    def _on_interrupt(self) -> None:
        """SIGINT/SIGTERM: stop after this step; a second one stops at once."""
        self._interrupts += 1
        if self._interrupts > 1:
            raise KeyboardInterrupt

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step, over all ranks."""
        return self.tokens_per_batch * self.grad_accum * self.comm.world

    def interrupted(self) -> bool:
        """Whether to stop after this step: Ctrl-C here or, with several ranks, on any rank.

        Several ranks must stop after the same step, so they follow the flag
        that the gradient all-reduce carries, not their own signal handler.
        """
        return self.interrupt_agreed if self.comm.world > 1 else self._interrupts > 0

    def _after_checkpoint(self, saved: bool) -> None:
        kill_at = os.environ.get("TINYLLM_KILL_AFTER_CHECKPOINT")
        if saved and kill_at and self.iteration >= int(kill_at) and self.is_main:   # rank 0 crashes
            os.kill(os.getpid(), signal.SIGKILL)

    def _save_interrupted(self, start: float, already_saved: bool) -> None:
        path = self.run_dir / "latest"
        if not already_saved:   # all ranks call save (the RNG gather); rank 0 writes
            path = self.save("latest", self.elapsed_before + time.perf_counter() - start)
        raise TrainingInterrupted(f"interrupted at iteration {self.iteration}: saved {path}; "
                                  f"continue with: {self.resume_hint}")
