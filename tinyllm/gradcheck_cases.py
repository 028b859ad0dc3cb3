"""The gradient checks ``tinyllm gradcheck`` runs: one small case per op and module.

Each :class:`GradCase` builds a function and its inputs from a seeded
generator. Inputs are drawn away from the places where an op has a kink
(``relu`` and ``abs`` at 0, ``clip`` at its bounds, ties in ``max``), so the
central differences of :mod:`tinyllm.gradcheck` are valid there.

Op cases are named after their :class:`~tinyllm.tensor.Function` class, so
every entry of ``OP_REGISTRY`` has a case of the same name (``MatMul``,
``Softmax``, ``CrossEntropy``, ...). Module cases are named ``nn.<Module>``
and check the gradient of a module's output with respect to its input and
every one of its parameters (through :func:`~tinyllm.nn.functional_call`);
``models.GPT`` and ``models.BERT`` do the same for a whole tiny model's loss.

:func:`run_case` runs one case. In float64 it is the finite-difference check;
in float32 it also runs the case's backward in float32 and compares those
gradients with the float64 ones (which the finite differences vouch for),
with tolerances suited to float32.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import backend
from .gradcheck import check_gradients
from .tensor import OP_REGISTRY, Tensor

Builder = Callable[[np.random.Generator], tuple[Callable[..., Any], list]]

# float32 backward against float64: pass when |g32 - g64| <= ATOL32 + RTOL32 * |g64|
ATOL32, RTOL32 = 1e-4, 1e-2


@dataclass(frozen=True)
class GradCase:
    """A named gradient check: ``build(rng) -> (fn, inputs)``.

    Attributes:
        name: what the user types (``tinyllm gradcheck MatMul nn.Linear``).
        ops: the Function classes the case goes through.
        build: makes the function under test and its inputs (float64 tensors
            that require grad are checked; other arguments pass through).
        eps: the finite-difference step.
        max_elements: inputs larger than this are checked along random directions.
        float32: whether the float32 backward can be compared with the float64 one
            (not for dropout: its random mask is drawn in the input's dtype).
    """

    name: str
    ops: tuple
    build: Builder
    eps: float = 1e-6
    max_elements: int = 512
    float32: bool = True


@dataclass
class CaseResult:
    """One row of the ``tinyllm gradcheck`` table."""

    name: str
    shapes: str
    max_abs_err: float
    max_rel_err: float
    passed: bool
    seconds: float
    detail: str = ""


# ----------------------------------------------------------------------------- input helpers

def _t(a: Any, grad: bool = True) -> Tensor:
    """A float64 tensor of the active backend from a host or device array."""
    return Tensor(backend.get_array_module(a).asarray(a, dtype=np.float64), requires_grad=grad)


def _normal(rng: np.random.Generator, *shape: int) -> Tensor:
    return _t(rng.standard_normal(shape))


def _away(rng: np.random.Generator, shape: tuple, points: tuple = (0.0,), gap: float = 0.1) -> Tensor:
    """Normal samples moved at least ``gap`` away from each of ``points`` (the kinks)."""
    x = rng.standard_normal(shape)
    for p in points:
        near = np.abs(x - p) < gap
        x = np.where(near, p + np.sign(x - p + 1e-12) * (gap + np.abs(x - p)), x)
    return _t(x)


def _distinct(rng: np.random.Generator, *shape: int) -> Tensor:
    """Values at least 0.1 apart (no ties for max/min), in a random order."""
    n = int(np.prod(shape))
    return _t(rng.permutation(np.linspace(-2.0, 2.0, n)).reshape(shape) + 0.01 * rng.random(shape))


def _positive(rng: np.random.Generator, *shape: int) -> Tensor:
    return _t(0.5 + rng.random(shape))


def _reseeded(fn: Callable[..., Any], seed: int) -> Callable[..., Any]:
    """``fn`` with the backend RNG reseeded before each call: a random mask, the same at every call."""
    def wrapped(*args: Any) -> Any:
        backend.manual_seed(seed)
        return fn(*args)
    return wrapped


def _module_case(module: Any, *args: Any, x: Tensor | None = None, pick: Callable[[Any], Any] | None = None,
                 checked: dict[str, Tensor] | None = None, **kwargs: Any) -> tuple[Callable, list]:
    """(fn, inputs) checking ``module(x, *args, **kwargs)`` against ``x`` (if given) and every parameter.

    ``checked``: keyword inputs whose gradients are checked too (e.g. a cross-attention ``memory``).

    ``pick`` selects the tensor to check from the module's output (e.g. the loss of ``(logits, loss)``).
    """
    from .nn import functional_call  # noqa: PLC0415  (nn sits above the engine)
    names = [n for n, _ in module.named_parameters()]
    weights = [_t(p.data) for _, p in module.named_parameters()]
    checked = checked or {}
    lead = ([x] if x is not None else []) + list(checked.values())
    n_pos = len(lead) - len(checked)

    def fn(*tensors: Any) -> Any:
        inp, kw, ws = tensors[:n_pos], tensors[n_pos:len(lead)], tensors[len(lead):]
        out = functional_call(module, dict(zip(names, ws)), *inp, *args, **dict(zip(checked, kw)), **kwargs)
        return pick(out) if pick else out

    return fn, lead + weights


# ----------------------------------------------------------------------------- op cases (one per Function)

def _unary(method: str, make: Callable[[np.random.Generator], Tensor]) -> Builder:
    return lambda rng: (lambda x: getattr(x, method)(), [make(rng)])


def _ops() -> list[GradCase]:
    import tinyllm  # noqa: PLC0415
    from . import functional as F  # noqa: PLC0415

    def where(rng: np.random.Generator) -> tuple:
        cond = rng.random((3, 4)) > 0.5
        return (lambda a, b: tinyllm.where(cond, a, b)), [_normal(rng, 3, 4), _normal(rng, 4)]

    def cross_entropy(rng: np.random.Generator) -> tuple:
        targets = rng.integers(0, 5, size=(2, 3))
        targets[0, 1] = -100                                   # an ignored position
        return (lambda z: F.cross_entropy(z, targets)), [_normal(rng, 2, 3, 5)]

    def embedding(rng: np.random.Generator) -> tuple:
        idx = np.array([[1, 3, 3], [0, 1, 4]])                 # row 3 used twice: gradients add up
        return (lambda w: F.embedding(w, idx)), [_normal(rng, 6, 4)]

    def attention(rng: np.random.Generator) -> tuple:
        return (lambda q, k, v: F.attention(q, k, v, causal=True)), [_normal(rng, 2, 2, 4, 3) for _ in range(3)]

    return [
        GradCase("Add", ("Add",), lambda r: (lambda a, b: a + b, [_normal(r, 3, 4), _normal(r, 4)])),
        GradCase("Sub", ("Sub",), lambda r: (lambda a, b: a - b, [_normal(r, 2, 3, 4), _normal(r, 3, 1)])),
        GradCase("Mul", ("Mul",), lambda r: (lambda a, b: a * b, [_normal(r, 3, 4), _normal(r, 3, 4)])),
        GradCase("Div", ("Div",), lambda r: (lambda a, b: a / b, [_normal(r, 3, 4), _positive(r, 4)])),
        GradCase("Pow", ("Pow",), lambda r: (lambda a, b: a ** b, [_positive(r, 3, 4), _normal(r, 3, 4)])),
        GradCase("Maximum", ("Maximum",), lambda r: (lambda a: tinyllm.maximum(a[0], a[1]), [_distinct(r, 2, 3, 4)])),
        GradCase("Minimum", ("Minimum",), lambda r: (lambda a: tinyllm.minimum(a[0], a[1]), [_distinct(r, 2, 3, 4)])),
        GradCase("MatMul", ("MatMul",), lambda r: (lambda a, b: a @ b, [_normal(r, 2, 3, 4), _normal(r, 4, 5)])),
        GradCase("Neg", ("Neg",), lambda r: (lambda x: -x, [_normal(r, 3, 4)])),
        GradCase("Exp", ("Exp",), _unary("exp", lambda r: _normal(r, 3, 4))),
        GradCase("Log", ("Log",), _unary("log", lambda r: _positive(r, 3, 4))),
        GradCase("Sqrt", ("Sqrt",), _unary("sqrt", lambda r: _positive(r, 3, 4))),
        GradCase("Tanh", ("Tanh",), _unary("tanh", lambda r: _normal(r, 3, 4))),
        GradCase("Sigmoid", ("Sigmoid",), _unary("sigmoid", lambda r: _normal(r, 3, 4))),
        GradCase("Relu", ("Relu",), _unary("relu", lambda r: _away(r, (3, 4)))),
        GradCase("Abs", ("Abs",), _unary("abs", lambda r: _away(r, (3, 4)))),
        GradCase("Clip", ("Clip",), lambda r: (lambda x: x.clip(-0.5, 0.5), [_away(r, (3, 4), (-0.5, 0.5))])),
        # float64 -> float16 -> float64 is exact on a grid of 2^-10, and so are the steps
        GradCase("Cast", ("Cast",), lambda r: (lambda x: x.astype("float16").astype(x.dtype),
                                               [_t(np.round(r.standard_normal((3, 4)) * 64) / 1024)]),
                 eps=2.0 ** -10),
        GradCase("Sum", ("Sum",), lambda r: (lambda x: x.sum(axis=(0, 2)), [_normal(r, 2, 3, 4)])),
        GradCase("Mean", ("Mean",), lambda r: (lambda x: x.mean(axis=1, keepdims=True), [_normal(r, 2, 3, 4)])),
        GradCase("Max", ("Max",), lambda r: (lambda x: x.max(axis=-1), [_distinct(r, 3, 4)])),
        GradCase("Min", ("Min",), lambda r: (lambda x: x.min(axis=0), [_distinct(r, 3, 4)])),
        GradCase("Var", ("Var",), lambda r: (lambda x: x.var(axis=-1), [_normal(r, 3, 5)])),
        GradCase("Reshape", ("Reshape",), lambda r: (lambda x: x.reshape(4, 6), [_normal(r, 2, 3, 4)])),
        GradCase("Permute", ("Permute",), lambda r: (lambda x: x.permute(2, 0, 1), [_normal(r, 2, 3, 4)])),
        GradCase("Expand", ("Expand",), lambda r: (lambda x: tinyllm.broadcast_to(x, (2, 3, 4)), [_normal(r, 3, 1)])),
        GradCase("GetItem", ("GetItem",), lambda r: (lambda x: x[np.array([0, 2, 2])], [_normal(r, 3, 4)])),
        GradCase("Concat", ("Concat",), lambda r: (lambda a, b: tinyllm.concat([a, b], axis=1),
                                                   [_normal(r, 2, 3), _normal(r, 2, 2)])),
        GradCase("Stack", ("Stack",), lambda r: (lambda a, b: tinyllm.stack([a, b], axis=0),
                                                 [_normal(r, 2, 3), _normal(r, 2, 3)])),
        GradCase("Where", ("Where",), where),
        GradCase("Softmax", ("Softmax",), lambda r: (lambda x: x.softmax(-1), [_normal(r, 3, 5)])),
        GradCase("LogSoftmax", ("LogSoftmax",), lambda r: (lambda x: x.log_softmax(-1), [_normal(r, 3, 5)])),
        GradCase("LogSumExp", ("LogSumExp",), lambda r: (lambda x: x.logsumexp(-1), [_normal(r, 3, 5)])),
        GradCase("Gelu", ("Gelu",), lambda r: ((lambda x: x.gelu(approximate="tanh")), [_normal(r, 3, 4)])),
        GradCase("LayerNorm", ("LayerNorm",), lambda r: (lambda x, w, b: F.layer_norm(x, w, b),
                                                         [_normal(r, 2, 3, 6), _normal(r, 6), _normal(r, 6)])),
        GradCase("Embedding", ("Embedding",), embedding),
        GradCase("Dropout", ("Dropout",), lambda r: (_reseeded(lambda x: F.dropout(x, 0.3), 7), [_normal(r, 4, 5)]),
                 float32=False),
        GradCase("Attention", ("Attention",), attention),
        GradCase("CrossEntropy", ("CrossEntropy",), cross_entropy),
    ]


# ----------------------------------------------------------------------------- nn cases (Functions and modules)

def _nn() -> list[GradCase]:
    from . import nn  # noqa: PLC0415
    from .nn import losses  # noqa: PLC0415

    def linear_fn(rng: np.random.Generator) -> tuple:
        return nn.linear, [_normal(rng, 2, 3, 4), _normal(rng, 5, 4), _normal(rng, 5)]

    def self_attention(rng: np.random.Generator) -> tuple:
        return (lambda qkv: nn.self_attention(qkv, n_head=2, causal=True)), [_normal(rng, 2, 4, 12)]

    def bce(rng: np.random.Generator) -> tuple:
        return losses.binary_cross_entropy_with_logits, [_normal(rng, 3, 4), _t(rng.random((3, 4)))]

    def attention_module(rng: np.random.Generator) -> tuple:
        padding = np.array([[True, True, True, False], [True, True, True, True]])   # one padded key
        return _module_case(nn.MultiHeadAttention(8, 2, causal=False), x=_normal(rng, 2, 4, 8), padding_mask=padding)

    def cross_attention(rng: np.random.Generator) -> tuple:
        memory_mask = np.array([[True, True, True, False, False], [True, True, True, True, True]])
        return _module_case(nn.CrossAttention(6, 3), x=_normal(rng, 2, 3, 6), checked={"memory": _normal(rng, 2, 5, 6)},
                            memory_mask=memory_mask)

    def cross_block(norm_first: bool) -> Builder:
        def build(rng: np.random.Generator) -> tuple:
            block = nn.TransformerBlock(6, 3, causal=True, norm_first=norm_first, cross_attention=True)
            memory_mask = np.array([[True, True, False, False, False], [True, True, True, True, True]])
            return _module_case(block, x=_normal(rng, 2, 3, 6), checked={"memory": _normal(rng, 2, 5, 6)},
                                memory_mask=memory_mask)
        return build

    def lora_module(rng: np.random.Generator) -> tuple:
        from .nn.lora import LoRALinear  # noqa: PLC0415
        layer = LoRALinear(nn.Linear(4, 6), r=2, alpha=3.0, slices=(0, 2), parts=3)   # q and v of a packed qkv
        layer.lora_B.data[...] = rng.normal(size=layer.lora_B.shape)               # B starts at 0: make it count
        return _module_case(layer, x=_normal(rng, 2, 3, 4))

    def quantized_linear(rng: np.random.Generator) -> tuple:
        from .compress import q8  # noqa: PLC0415
        from .compress.quantize import QuantizedLinearFunction  # noqa: PLC0415
        q, d = q8.quantize(rng.normal(size=(5, 40)))                                 # int8 weights: constants
        return ((lambda x, b: QuantizedLinearFunction.apply(x, b, q=q, scale=d.astype(np.float64))),
                [_normal(rng, 2, 3, 40), _normal(rng, 5)])

    def contrastive(rng: np.random.Generator) -> tuple:
        return (lambda a, b: losses.contrastive_loss(a, b, temperature=0.5)), [_normal(rng, 4, 6), _normal(rng, 4, 6)]

    return [
        GradCase("LinearFunction", ("LinearFunction",), linear_fn),
        GradCase("SelfAttentionFunction", ("SelfAttentionFunction",), self_attention),
        GradCase("BinaryCrossEntropyWithLogits", ("BinaryCrossEntropyWithLogits",), bce),
        GradCase("nn.Linear", ("LinearFunction",), lambda r: _module_case(nn.Linear(4, 3), x=_normal(r, 2, 4))),
        GradCase("nn.Embedding", ("Embedding",),
                 lambda r: _module_case(nn.Embedding(7, 4), np.array([[0, 6, 6], [2, 3, 0]]))),
        GradCase("nn.LayerNorm", ("LayerNorm",), lambda r: _module_case(nn.LayerNorm(6), x=_normal(r, 2, 3, 6))),
        GradCase("nn.MLP", ("LinearFunction", "Gelu"), lambda r: _module_case(nn.MLP(4), x=_normal(r, 2, 3, 4)),
                 max_elements=64),
        GradCase("nn.MultiHeadAttention", ("LinearFunction", "SelfAttentionFunction"), attention_module,
                 max_elements=64),
        GradCase("nn.TransformerBlock", ("LayerNorm", "SelfAttentionFunction", "LinearFunction", "Gelu", "Add"),
                 lambda r: _module_case(nn.TransformerBlock(8, 2, causal=True), x=_normal(r, 2, 4, 8)),
                 max_elements=64),
        GradCase("nn.TransformerBlock.post_ln", ("LayerNorm", "SelfAttentionFunction", "LinearFunction", "Gelu"),
                 lambda r: _module_case(nn.TransformerBlock(8, 2, causal=False, norm_first=False, eps=1e-12),
                                        x=_normal(r, 2, 4, 8)),
                 max_elements=64),
        GradCase("nn.CrossAttention", ("LinearFunction", "GetItem", "Permute", "Attention"), cross_attention,
                 max_elements=64),
        GradCase("nn.TransformerBlock.cross", ("LayerNorm", "SelfAttentionFunction", "Attention", "LinearFunction"),
                 cross_block(True), max_elements=64),
        GradCase("nn.TransformerBlock.cross_post_ln", ("LayerNorm", "SelfAttentionFunction", "Attention"),
                 cross_block(False), max_elements=64),
        GradCase("nn.LoRALinear", ("LinearFunction", "GetItem", "Concat", "Mul", "Add"), lora_module),
        GradCase("QuantizedLinearFunction", ("QuantizedLinearFunction",), quantized_linear),
        GradCase("nn.contrastive_loss", ("MatMul", "CrossEntropy", "Sqrt", "Div"), contrastive),
    ]


def _models() -> list[GradCase]:
    def gpt(rng: np.random.Generator) -> tuple:
        from .models import GPT, GPTConfig  # noqa: PLC0415
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
        idx = rng.integers(0, 11, size=(2, 5))
        targets = rng.integers(0, 11, size=(2, 5))
        return _module_case(model, idx, targets, pick=lambda out: out[1])

    def bert(rng: np.random.Generator) -> tuple:
        from .models import BERT, BertConfig  # noqa: PLC0415
        model = BERT(BertConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0))
        idx = rng.integers(4, 11, size=(2, 5))
        targets = np.full((2, 5), -100)
        targets[:, 1] = idx[:, 1]                               # predict one masked position per row
        idx[:, 1] = 3
        mask = np.ones((2, 5), dtype=bool)
        mask[1, 4] = False                                     # one padded position
        return _module_case(model, idx, targets, pick=lambda out: out[1], attention_mask=mask)

    def crf_tagger(rng: np.random.Generator) -> tuple:
        from .models import BERT, BertConfig  # noqa: PLC0415
        from .models.tagging import TokenClassifier  # noqa: PLC0415
        bert = BERT(BertConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0,
                               exact_gelu=True))
        model = TokenClassifier(bert, 3, crf=True, tags=["O", "B-X", "I-X"], scheme="BIO")
        idx = rng.integers(4, 11, size=(2, 5))
        labels = np.array([[-100, 1, 2, -100, 0], [-100, 0, 1, -100, -100]])   # first pieces only
        mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=bool)
        return _module_case(model, idx, labels, pick=lambda out: out[1], attention_mask=mask)

    def crf_nll(rng: np.random.Generator) -> tuple:
        from .models.crf import CRFNegLogLikelihood  # noqa: PLC0415
        tags = np.array([[0, 3, 1, 4], [2, 0, 0, 0]])
        mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)       # ragged: the second row has 2 tags
        return ((lambda e, s, t, n: CRFNegLogLikelihood.apply(e, s, t, n, tags=tags, mask=mask)),
                [_normal(rng, 2, 4, 5), _normal(rng, 5), _normal(rng, 5, 5), _normal(rng, 5)])

    def seq2seq(post_ln: bool) -> Builder:
        def build(rng: np.random.Generator) -> tuple:
            from .models import Seq2Seq, Seq2SeqConfig  # noqa: PLC0415
            extra = dict(norm_first=False, positions="learned", share_embeddings=True, tie_weights=False,
                         activation="gelu") if post_ln else dict(label_smoothing=0.1, src_vocab_size=7)
            model = Seq2Seq(Seq2SeqConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.0,
                                          **extra))
            src = rng.integers(3, 7, size=(2, 4))
            src[1, 3] = 0                                       # a padded source position
            tgt_in = rng.integers(3, 9, size=(2, 3))
            tgt_in[:, 0] = 1                                    # BOS
            targets = np.concatenate([tgt_in[:, 1:], np.full((2, 1), 2)], axis=1)   # shifted, EOS last
            targets[1, 2] = -100                                # a padded target position
            return _module_case(model, src, tgt_in, targets, pick=lambda out: out[1])
        return build

    return [
        GradCase("CRFNegLogLikelihood", ("CRFNegLogLikelihood",), crf_nll),
        GradCase("models.TokenClassifier.crf", ("CRFNegLogLikelihood", "GeluExact", "GetItem"), crf_tagger,
                 max_elements=64),
        GradCase("models.Seq2Seq", ("Embedding", "SelfAttentionFunction", "Attention", "LayerNorm", "CrossEntropy"),
                 seq2seq(False), max_elements=64),
        GradCase("models.Seq2Seq-postLN", ("Embedding", "SelfAttentionFunction", "Attention", "LayerNorm",
                                           "CrossEntropy"), seq2seq(True), max_elements=64),
        GradCase("models.GPT", ("Embedding", "SelfAttentionFunction", "LayerNorm", "CrossEntropy"), gpt,
                 max_elements=64),
        GradCase("models.BERT", ("Embedding", "SelfAttentionFunction", "LayerNorm", "CrossEntropy"), bert,
                 max_elements=64),
    ]


def all_cases() -> dict[str, GradCase]:
    """Every gradient check, by name: the ops first, then nn, then whole models."""
    from .gradcheck_surface import surface_cases  # noqa: PLC0415  (the PyTorch surface's ops)
    surface = [GradCase(name, ops, build, eps) for name, ops, build, eps in surface_cases()]
    return {c.name: c for c in _ops() + surface + _nn() + _models()}


def registered_ops() -> list[str]:
    """Names of the differentiable Function classes defined in tinyllm (after importing nn and models)."""
    from . import models, nn  # noqa: F401, PLC0415  (importing them registers their Functions)
    return sorted(name for name, cls in OP_REGISTRY.items() if cls.__module__.startswith("tinyllm."))


def select(names: list[str]) -> list[GradCase]:
    """The cases called ``names`` (case-insensitive), or all of them when ``names`` is empty.

    Raises:
        ValueError: an unknown name, with the list of valid ones.
    """
    cases = all_cases()
    if not names:
        return list(cases.values())
    lower = {n.lower(): c for n, c in cases.items()}
    unknown = [n for n in names if n.lower() not in lower]
    if unknown:
        raise ValueError(f"unknown gradcheck case{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"valid names: {', '.join(cases)}")
    return [lower[n.lower()] for n in dict.fromkeys(names)]


# ----------------------------------------------------------------------------- running one case

def _backward_grads(fn: Callable[..., Any], inputs: list, dtype: Any, seed: int) -> list:
    """Autograd gradients of sum(v * fn(inputs)) w.r.t. the floating inputs, with inputs cast to ``dtype``."""
    xs = [Tensor(x.data.astype(dtype), requires_grad=True) if isinstance(x, Tensor) and x.dtype.kind == "f"
          else x for x in inputs]
    out = fn(*xs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    rng = np.random.default_rng(seed)
    live = [o for o in outs if o.requires_grad]
    for o in live:
        v = rng.standard_normal(o.shape).astype(o.dtype)
        o.backward(backend.get_array_module(o.data).asarray(v), retain_graph=len(live) > 1)
    return [backend.to_numpy(x.grad).astype(np.float64) if x.grad is not None else np.zeros(x.shape)
            for x in xs if isinstance(x, Tensor) and x.dtype.kind == "f"]


def _shapes(inputs: list) -> str:
    """Input shapes, e.g. "3x4, 4"; long lists (a module's parameters) are cut short with a count."""
    shapes = ["x".join(str(n) for n in x.shape) or "scalar" for x in inputs if isinstance(x, Tensor)]
    return ", ".join(shapes) if len(shapes) <= 3 else f"{', '.join(shapes[:2])}, ... ({len(shapes)} tensors)"


def run_case(case: GradCase, seed: int = 0, dtype: str = "float64") -> CaseResult:
    """Build ``case`` from ``seed`` and check it; never raises on a mismatch (the result says so).

    float64: autograd against central finite differences (:func:`~tinyllm.gradcheck.check_gradients`).
    float32: that check, and then the float32 backward against the float64 one.
    """
    start = time.perf_counter()
    backend.manual_seed(seed)
    fn, inputs = case.build(np.random.default_rng(seed))
    report = check_gradients(fn, *inputs, eps=case.eps, max_elements=case.max_elements, seed=seed)
    abs_err, rel_err, passed = report.max_abs_err, report.max_rel_err, report.passed
    detail = next((f"input {r.index}: {r.worst}" for r in report.inputs if not r.passed), "")
    if dtype == "float32" and passed and case.float32:
        g64 = _backward_grads(fn, inputs, np.float64, seed)
        g32 = _backward_grads(fn, inputs, np.float32, seed)
        abs_err = max((float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(g32, g64)), default=0.0)
        rel_err = max((float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12), initial=0.0))
                       if np.max(np.abs(a - b), initial=0.0) > ATOL32 else 0.0 for a, b in zip(g32, g64)),
                      default=0.0)
        passed = all(bool(np.all(np.abs(a - b) <= ATOL32 + RTOL32 * np.abs(b))) for a, b in zip(g32, g64))
        if not passed:
            detail = f"float32 backward differs from float64 by up to {abs_err:.3g}"
    return CaseResult(case.name, _shapes(inputs), abs_err, rel_err, passed, time.perf_counter() - start, detail)
