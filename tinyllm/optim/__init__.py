"""Optimizers, learning-rate schedules and gradient clipping.

- ``optimizer``: the base class (param groups, flat buffers, state_dict);
  ``flat``: how a group's parameters become one contiguous buffer
- ``sgd``: SGD with momentum / Nesterov / weight decay
- ``adam``: Adam and AdamW
- ``schedules``: constant, linear warmup, warmup + cosine, warmup + linear
- ``clip``: ``clip_grad_norm_`` for any list of tensors

A training step::

    loss.backward()
    norm = optimizer.clip_grad_norm_(1.0)
    optimizer.set_lr(schedule(it))
    optimizer.step()
    optimizer.zero_grad()

Data-parallel training reaches the gradients through ``optimizer.grad_buffers()``
(one flat array per parameter group, synced with every ``p.grad``): one
all-reduce of each, in place, between backward and ``step()``.
"""
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .groups import configure_adamw, decay_groups
from .optimizer import Optimizer
from .schedules import (SCHEDULES, Constant, LinearWarmup, Schedule, WarmupCosine, WarmupLinear,
                        make_schedule)
from .sgd import SGD

__all__ = ["Adam", "AdamW", "SGD", "Optimizer", "clip_grad_norm_", "configure_adamw", "decay_groups", "Schedule",
           "Constant", "LinearWarmup", "WarmupCosine", "WarmupLinear", "make_schedule", "SCHEDULES"]
