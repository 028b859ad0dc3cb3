"""LoRA: low-rank adapters on frozen Linear layers (Hu et al. 2021, "LoRA: Low-Rank
Adaptation of Large Language Models").

A pre-trained weight W (out, in) stays frozen; the update is learned as a product
of two thin matrices, A (r, in) and B (out, r), with r << min(in, out):

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T

A starts Kaiming-uniform (as ``torch.nn.Linear``: U(-1/sqrt(in), 1/sqrt(in))), B
starts at zero, so the adapted model starts out exactly equal to the base one and
only r (in + out) numbers per layer are trained. After training the update folds
into the weight, ``W <- W + (alpha / r) B A`` (:meth:`LoRALinear.merge`), and the
model runs at the base model's cost; :meth:`LoRALinear.unmerge` takes it out again.

**Packed projections.** tinyllm's attention computes q, k and v with one Linear,
``c_attn`` (out = 3C: rows 0..C-1 are q, C..2C-1 are k, 2C..3C-1 are v). The
paper adapts W_q and W_v separately; here the targets ``q``/``k``/``v`` (or BERT's
``query``/``key``/``value``) give every ``c_attn`` one adapter per chosen third:
A_s (r, in) and B_s (C, r) for each slice s, the update landing in that slice's
rows only. ``c_attn`` itself adapts the packed weight as a whole (one A, one B of
3C rows), as PEFT does for GPT-2.

Targets are matched against dotted module names: a target matches a Linear whose
name is the target or ends with ``.<target>``. So ``c_proj`` matches both
``attn.c_proj`` and ``mlp.c_proj``; ``attn.c_proj`` only the attention output.

**Hugging Face BERT names.** With ``bert_names=True`` (what
``tinyllm.compress.adapter.add_lora`` and ``tinyllm finetune`` pass for a BERT), a
block's Linear layers also answer to the names Hugging Face's BERT gives them
(``tinyllm.models.hf_bert`` maps them one to one), so targets can be written as
for PEFT on a ``BertModel``:

    h.i.attn.c_proj   encoder.layer.i.attention.output.dense
    h.i.mlp.c_fc      encoder.layer.i.intermediate.dense
    h.i.mlp.c_proj    encoder.layer.i.output.dense

with the same suffix rule: ``attention.output.dense`` is the attention output,
``intermediate.dense`` the first MLP layer, ``output.dense`` (like PEFT) both
outputs, ``dense`` all three (and an MLM head's ``dense``).
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Sequence

from ..backend import get_array_module
from ..ops import concat
from ..tensor import Tensor
from . import init
from .layers import Dropout, Linear, linear
from .module import Module, Parameter

DEFAULT_TARGETS = ("c_attn", "c_proj")
# target name -> which third of a packed q|k|v projection it stands for
QKV_SLICES = {"q": 0, "k": 1, "v": 2, "query": 0, "key": 1, "value": 2}
PACKED_QKV = "c_attn"


class LoRALinear(Linear):
    """A Linear layer with a low-rank update: ``y = x W^T + b + scale * sum_s dropout(x) A_s^T B_s^T``.

    It keeps the wrapped layer's own ``weight`` and ``bias`` Parameters (same
    objects, same names in ``state_dict``), so a base checkpoint loads into it
    unchanged; the adapter adds ``lora_A`` (k, r, in) and ``lora_B`` (k, m, r).

    Args:
        base: the Linear to adapt (its weight and bias are shared, not copied).
        r: the rank (>= 1).
        alpha: the scale numerator: the update is multiplied by ``alpha / r``.
        dropout: dropout probability on the adapter's input (training only).
        slices: which of ``parts`` equal row blocks of the output get an adapter
            (default: the whole output as one block).
        parts: into how many equal row blocks the output splits (3 for a packed q|k|v).
    """

    def __init__(self, base: Linear, r: int, alpha: float = 1.0, dropout: float = 0.0,
                 slices: Sequence[int] | None = None, parts: int = 1) -> None:
        if not isinstance(base, Linear) or isinstance(base, LoRALinear):
            raise TypeError(f"LoRALinear wraps a plain Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
            raise ValueError(f"LoRA rank r must be an integer >= 1, got {r!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"LoRA alpha must be a finite number > 0, got {alpha!r}")
        if isinstance(parts, bool) or not isinstance(parts, numbers.Integral) or parts < 1 \
                or base.out_features % parts:
            raise ValueError(f"parts must divide out_features ({base.out_features}), got {parts!r}")
        slices = tuple(range(parts)) if slices is None else tuple(sorted(set(slices)))
        if not slices or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < parts
                             for s in slices):
            raise ValueError(f"slices must be distinct integers in [0, {parts}), got {slices!r}")
        Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias               # shared with the wrapped layer
        for name in base._buffer_names:                               # e.g. a pruning mask
            self.register_buffer(name, getattr(base, name))
        self.r, self.alpha, self.parts, self.slices = int(r), float(alpha), int(parts), slices
        self.scale = self.alpha / self.r
        self.rows = self.out_features // self.parts                   # m: output rows per slice
        xp, dt = get_array_module(base.weight.data), base.weight.dtype
        self.lora_A = Parameter(xp.zeros((len(slices), self.r, self.in_features), dtype=dt))
        self.lora_B = Parameter(xp.zeros((len(slices), self.rows, self.r), dtype=dt))
        self.lora_dropout = Dropout(dropout)
        self.merged = False
        self.reset_lora()

    def reset_lora(self) -> None:
        """A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform with a = sqrt(5), torch's Linear init); B = 0."""
        if self.merged:
            raise RuntimeError("unmerge() the adapter before resetting it")
        bound = 1.0 / math.sqrt(self.in_features)
        init.uniform_(self.lora_A, -bound, bound)
        init.zeros_(self.lora_B)

    def delta_weight(self) -> Any:
        """The update as an array shaped like W: scale * B_s A_s in the rows of each slice s, zero elsewhere."""
        A, B = self.lora_A.data, self.lora_B.data
        xp = get_array_module(A)
        d = xp.zeros(self.weight.shape, dtype=self.weight.dtype)
        for i, s in enumerate(self.slices):
            d[s * self.rows:(s + 1) * self.rows] = self.scale * (B[i] @ A[i])   # (m, r) @ (r, in) -> (m, in)
        return d

    def merge(self) -> None:
        """Fold the update into the weight, in place (W <- W + scale B A); a second call changes nothing."""
        if not self.merged:
            self.weight.data += self.delta_weight()
            self.merged = True

    def unmerge(self) -> None:
        """Take the update out of the weight again (W <- W - scale B A); a no-op when not merged."""
        if self.merged:
            self.weight.data -= self.delta_weight()
            self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        y = linear(x, self.weight, self.bias)                         # (..., in) -> (..., out)
        if self.merged:
            return y
        xd = self.lora_dropout(x)
        zeros = None
        pieces: list[Tensor] = []
        for s in range(self.parts):
            if s not in self.slices:
                if zeros is None:
                    xp = get_array_module(x.data)
                    zeros = Tensor(xp.zeros((*x.shape[:-1], self.rows), dtype=y.dtype))
                pieces.append(zeros)
                continue
            i = self.slices.index(s)
            h = linear(xd, self.lora_A[i])                            # (..., in) -> (..., r)
            pieces.append(linear(h, self.lora_B[i]))                  # (..., r) -> (..., m)
        delta = pieces[0] if len(pieces) == 1 else concat(pieces, axis=-1)   # (..., out)
        return y + delta * self.scale

    def extra_repr(self) -> str:
        part = "" if self.parts == 1 else f", slices={self.slices} of {self.parts}"
        return f"{self.in_features}, {self.out_features}, r={self.r}, alpha={self.alpha:g}{part}" \
               + (", merged" if self.merged else "")


# tinyllm's name of a block's Linear -> Hugging Face BERT's (see the module docstring)
HF_BERT_NAMES = {"attn.c_proj": "attention.output.dense", "mlp.c_fc": "intermediate.dense",
                 "mlp.c_proj": "output.dense"}
_BLOCK_LINEAR = re.compile(r"(?:^|\.)h\.(\d+)\.(attn\.c_proj|mlp\.c_fc|mlp\.c_proj)$")


def hf_bert_name(name: str) -> str | None:
    """Hugging Face BERT's name for a block's Linear ``name`` (None for any other layer):
    ``h.2.mlp.c_fc`` -> ``encoder.layer.2.intermediate.dense``."""
    m = _BLOCK_LINEAR.search(name)
    return None if m is None else f"encoder.layer.{m.group(1)}.{HF_BERT_NAMES[m.group(2)]}"


def _suffix(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _matches(name: str, target: str, bert_names: bool = False) -> bool:
    """Whether Linear ``name`` is ``target``: by its own dotted name or (``bert_names``) its Hugging Face name."""
    hf = hf_bert_name(name) if bert_names else None
    return _suffix(name, target) or (hf is not None and _suffix(hf, target))


def parse_targets(targets: str | Sequence[str]) -> tuple[str, ...]:
    """``"c_attn,c_proj"`` or a sequence of names -> a tuple of non-empty, distinct target names."""
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    if not all(isinstance(t, str) for t in items):
        raise ValueError(f"LoRA targets must be module names, got {targets!r}")
    out = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
    if not out:
        raise ValueError("LoRA needs at least one target module name (e.g. c_attn,c_proj)")
    return out


def apply_lora(model: Module, targets: str | Sequence[str] = DEFAULT_TARGETS, r: int = 8, alpha: float = 16.0,
               dropout: float = 0.0, freeze: bool = True, bert_names: bool = False,
               skip: Sequence[str] = ()) -> list[str]:
    """Replace the targeted Linear layers of ``model`` by :class:`LoRALinear`, in place.

    Args:
        model: any module (a GPT, a BERT, a classifier's backbone).
        targets: module names (see the module docstring): ``c_attn``, ``c_proj``,
            ``attn.c_proj``, ``c_fc``, ... and ``q``/``k``/``v`` (or ``query``/
            ``key``/``value``) for the thirds of every packed ``c_attn``; with
            ``bert_names``, BERT's Hugging Face names as well (``attention.output.dense``,
            ``intermediate.dense``, ``output.dense``, ``dense``).
        r, alpha, dropout: the adapters' rank, scale numerator and input dropout.
        bert_names: accept Hugging Face BERT's names for a block's layers (see the module docstring).
        skip: modules (dotted names) whose layers are never adapted, e.g. a backbone's own output
            head that a task head does not use (BERT's ``mlm`` under a classifier).
        freeze: set ``requires_grad=False`` on every parameter of ``model`` except
            the adapters' (a head added around ``model`` afterwards is not touched).

    Returns:
        The dotted names of the adapted layers. A target that matches nothing is an error.
    """
    targets = parse_targets(targets)
    whole = [t for t in targets if t not in QKV_SLICES]
    qkv = sorted({QKV_SLICES[t] for t in targets if t in QKV_SLICES})
    if qkv and PACKED_QKV in whole:
        raise ValueError("target c_attn adapts the packed q|k|v weight as a whole; it cannot be combined "
                         "with q/k/v (query/key/value), which adapt its thirds")
    chosen: list[tuple[Module, str, str, tuple | None]] = []         # (parent, attribute, full name, slices)
    used: set[str] = set()
    for name, mod in list(model.named_modules()):
        for attr, child in list(mod.named_children()):
            full = f"{name}.{attr}" if name else attr
            if not isinstance(child, Linear) or any(full == s or full.startswith(s + ".") for s in skip):
                continue
            hit = [t for t in whole if _matches(full, t, bert_names)]
            if isinstance(child, LoRALinear) and (hit or (qkv and attr == PACKED_QKV)):
                raise ValueError(f"'{full}' already has a LoRA adapter")
            if isinstance(child, LoRALinear):
                continue
            if hit:
                used.update(hit)
                chosen.append((mod, attr, full, None))
            elif qkv and attr == PACKED_QKV:
                used.update(t for t in targets if t in QKV_SLICES)
                chosen.append((mod, attr, full, tuple(qkv)))
    missing = [t for t in targets if t not in used]
    if missing:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, Linear)})
        bert = "; BERT's attention.output.dense, intermediate.dense, output.dense and dense name a block's " \
               "c_proj / c_fc" if bert_names else ""
        raise ValueError(f"LoRA target {', '.join(missing)} matches no Linear layer of the model "
                         f"(its Linear layers are named {', '.join(linears) or 'nothing'}; q/k/v or query/key/value "
                         f"adapt the thirds of a packed c_attn{bert})")
    if freeze:
        model.requires_grad_(False)
    for parent, attr, _, slices in chosen:
        base = getattr(parent, attr)
        setattr(parent, attr, LoRALinear(base, r, alpha, dropout, slices, 3 if slices else 1))
    return [full for _, _, full, _ in chosen]


def lora_layers(model: Module) -> list[tuple[str, LoRALinear]]:
    """(dotted name, layer) of every LoRA layer in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


def merge_lora(model: Module) -> None:
    """Fold every adapter of ``model`` into its weight (idempotent)."""
    for _, m in lora_layers(model):
        m.merge()


def unmerge_lora(model: Module) -> None:
    """Take every merged adapter of ``model`` out of its weight again (idempotent)."""
    for _, m in lora_layers(model):
        m.unmerge()


def unwrap_lora(model: Module) -> None:
    """Merge every adapter and put a plain Linear (the same weight and bias) in its place."""
    for _, mod in list(model.named_modules()):
        for attr, child in list(mod.named_children()):
            if isinstance(child, LoRALinear):
                child.merge()
                plain = Linear(0, 0, bias=False)                      # an empty shell, then the merged weights
                plain.in_features, plain.out_features = child.in_features, child.out_features
                plain.weight, plain.bias = child.weight, child.bias
                setattr(mod, attr, plain)


def is_lora_parameter(name: str) -> bool:
    """Whether a dotted parameter name is an adapter's (``...lora_A`` / ``...lora_B``)."""
    return name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")


def trainable_count(model: Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of ``model``, tied weights counted once."""
    params = model.parameters()
    return int(sum(p.size for p in params if p.requires_grad)), int(sum(p.size for p in params))


__all__ = ["DEFAULT_TARGETS", "LoRALinear", "apply_lora", "is_lora_parameter", "lora_layers", "merge_lora",
           "parse_targets", "trainable_count", "unmerge_lora", "unwrap_lora"]
