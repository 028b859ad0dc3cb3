"""Edge cases of the PyTorch surface run on tinyllm and on PyTorch 2.13 as written: each case
is a few statements over ``M`` (the library), ``D`` (its dtypes) and ``t`` (make a tensor from
a NumPy array or a Python number); it leaves its answer in ``r``. Both must give the same
values, shapes and dtypes, or both raise the same kind of error (RuntimeError, IndexError,
ValueError, TypeError as PyTorch raises it).

Skipped without torch; ``test_surface_edge.py`` states the same behaviour as values.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

import tinyllm
import tinyllm.nn

torch = pytest.importorskip("torch")

NAN, INF = float("nan"), float("inf")

CASES = [
    # NumPy reading tensors
    "r = (t(np.asarray(t([1.0, 2.0]))), M.tensor([t(1.0), t(2.0)]), t(np.array(t([1, 2]), dtype=np.float32)))",
    # empty tensors through ops and their backward
    "x = M.zeros(0, 3); r = (x.sum(), x.sum(0), x.sum(1), x.mean(0), x.prod(0), x.norm())",
    "x = M.zeros(0, 3); r = (x.max(1), x.amax(1), x.argmax(1), x.softmax(-1), x.log_softmax(-1))",
    "x = M.zeros(0, 3); r = (x.cumsum(0), x.reshape(-1), x @ M.zeros(3, 2), x[x > 0], x.std(0))",
    "x = M.zeros(0, 3); r = x.max(0)",
    "x = M.zeros(0, 3); r = x.max()",
    "x = M.zeros(0, 3); r = x.amin(0)",
    "x = M.zeros(0, 3, requires_grad=True); (x.exp() * 2).sum().backward(); r = t(x.grad)",
    "x = M.zeros(0, 3, requires_grad=True); x.max(1).values.sum().backward(); r = t(x.grad)",
    "x = M.zeros(0, 3, requires_grad=True); x.mean(0).sum().backward(); r = t(x.grad)",
    "x = M.zeros(2, 0, requires_grad=True); (x @ M.ones(0, 3)).sum().backward(); r = t(x.grad)",
    # 0-d tensors
    "x = t(2.0); r = (x.sum(0), x.sum(-1), x.unsqueeze(0), x.unsqueeze(-1), x.reshape(1, 1), x.max(0))",
    "x = t(2.0); r = (x.argmax(0), x.softmax(0), x.T, x[None], x[...], x.expand(3), x.var())",
    "x = t(2.0); r = x.sum(1)",
    "x = t(2.0); r = (x.mT, t(np.ones((2, 3, 4))).mT)",
    "r = t([2.0]).mT",
    "x = t(2.0); r = x[0]",
    "x = t(2.0, requires_grad=True); (x * x).backward(); r = t(x.grad)",
    # scalars out of tensors
    "r = (float(t([2.5])), int(t([[3]])), bool(t([0.0])), t(3.5).item(), t([[7]]).item())",
    "r = bool(t([1.0, 2.0]))",
    "r = bool(M.zeros(0))",
    "r = float(t([1.0, 2.0]))",
    "r = int(t([1, 2]))",
    # dims: negative, out of range, tuples, keepdim
    "x = M.ones(2, 3); r = (x.sum(-1), x.sum((0, 1)), x.sum([0, 1], keepdim=True), x.mean(-2, keepdim=True))",
    "x = M.ones(2, 3); r = x.sum(2)",
    "x = M.ones(2, 3); r = x.sum(-3)",
    "x = M.ones(2, 3); r = x.unsqueeze(3)",
    "x = M.ones(2, 3); r = x.softmax(2)",
    "x = M.ones(2, 3); r = x.gather(2, M.zeros(2, 3, dtype=D.i64))",
    "x = M.ones(2, 3); r = M.cat([x, x], 2)",
    "x = M.ones(2, 3); r = (M.stack([x, x], -1), M.stack([x, x], -3), x.argmax(-1, keepdim=True))",
    # promotion and Python/NumPy scalars on either side
    "r = (t([1, 2]) / t([2, 4]), t([1, 2]) / 2, t([1, 2]) + 1.5, t([True, False]) + 1, t([True]).sum())",
    "r = (t([1, 2], dtype=D.u8).sum(), t([1, 2], dtype=D.i32).sum(), t([1, 2], dtype=D.i32) + 2)",
    "r = (t([1.0], dtype=D.f16) + t(2.0, dtype=D.f64), t([1, 2]) + t(2.0, dtype=D.f64))",
    "r = (2 - t([1.0, 4.0]), 2.5 - t([1, 4]), 1 / t([1, 4]), t([1, 4]) ** 0.5, 0.5 ** t([1.0, 4.0]))",
    "r = (np.float32(2) * t([1.0]), t([1.0]) * np.float64(2), t([1, 4]) * np.float64(2), 2 ** t([1, 4]))",
    "r = (t([-3, 3]) % 2, t([-3.0, 3.0]) % 2, t([-3, 3]) // 2, t([-3.5, 3.5]) // 2)",
    "r = t([1.0, 4.0]) + t([1.0, 2.0, 3.0])",
    "r = t([1.0, 4.0]) @ t([1.0, 2.0, 3.0])",
    # comparisons
    "r = (t([1, 2]) == 1, t([1, 2]) == 1.5, t([1.0, 2.0]) < t([2, 1]), 1 < t([1.0, 2.0]))",
    "r = (t([1.0, NAN]) == t([1.0, NAN]), t([1.0, NAN]) != t([1.0, NAN]), t([True]) == t([1]))",
    "r = (t([1.0, 2.0]) == None, t([1.0, 2.0]) != None, t([1.0]) == 'a')",
    # nan and inf through max/min/argmax/clamp/softmax
    "x = t([[1.0, NAN, 3.0]]); r = (x.max(), x.min(), x.max(1), x.min(-1), x.amax(1), x.argmax())",
    "r = (t([1.0, NAN]).clamp(0, 1), t([1.0, 2.0]).clamp(2.0, 1.0), t([1, 2]).clamp(0.5, 1.5))",
    "r = t([1.0, 2.0]).clamp(min=t([1.5, 1.5]), max=t([1.8, 3.0]))",
    "x = t([0.0, -INF, 1.0]); r = (x.softmax(0), x.log_softmax(0), t([-INF, -INF]).softmax(0))",
    "r = (t([INF, 1.0]).logsumexp(0), t([-INF, 1.0]).logsumexp(0))",
    # indexing and its backward
    "x = t(np.arange(12.).reshape(3, 4)); r = (x[-1], x[::2, 1::2], x[None, ..., None], x[..., 1])",
    "x = t(np.arange(12.).reshape(3, 4)); r = (x[x > 100], x[x > 5], x[t([True, False, True])])",
    "x = t(np.arange(12.).reshape(3, 4)); r = (x[t([0, 0, 2])], x[[0, 2], [1, 3]], x[:, [1, 1]], x[t(1)])",
    "x = t(np.arange(12.).reshape(3, 4)); r = x[3]",
    "x = t(np.arange(12.).reshape(3, 4)); r = x[:, -5]",
    "x = t(np.arange(12.).reshape(3, 4)); r = x[t([0, 3])]",
    "x = t(np.arange(12.).reshape(3, 4)); r = x[0, 0, 0]",
    "x = t(np.arange(12.).reshape(3, 4), requires_grad=True); x[t([0, 0, 2])].sum().backward(); r = t(x.grad)",
    "x = t(np.arange(12.).reshape(3, 4), requires_grad=True); x[[0, 0], [1, 1]].sum().backward(); r = t(x.grad)",
    "x = t(np.arange(12.).reshape(3, 4), requires_grad=True); x[x > 5].sum().backward(); r = t(x.grad)",
    # setitem and in-place ops
    "x = t(np.arange(12.).reshape(3, 4)); x[0] = 5; x[:, 0] = t([1.0, 2.0, 3.0]); x[x > 9] = 0; r = x",
    "x = t(np.arange(12.).reshape(3, 4)); x[[0, 0], [1, 1]] = -1.0; x[1, ::2] = t([7.0]); r = x",
    "x = t(np.arange(12.).reshape(3, 4)); x[0] = t([1.0, 2.0]); r = x",
    "x = t([1, 2]); x[0] = 1.7; r = x",
    "x = t([1.0, 2.0]); y = x; x += 1; x *= 3; x -= 1; x /= 2; r = (x, y)",
    "x = t([1.0, 2.0]); y = x.view(2); z = x[0:1]; x.add_(1); r = (y, z)",
    "x = t(np.ones((3, 1))); x.add_(t(np.ones((3, 4)))); r = x",
    "x = t(np.ones((3, 1))); x += t(np.ones((3, 4))); r = x",
    "x = t([1, 2]); x += 1.5; r = x",
    "x = t([1.0, 2.0], requires_grad=True); x += 1; r = x",
    "w = t([1.0, 2.0], requires_grad=True); h = w * 2; h += 1; h.sum().backward(); r = (h, t(w.grad))",
    "x = t([[1.0, 2.0]]); y = x.reshape(2); y[0] = 9; r = x",
    # autograd API
    "x = t([1.0, 2.0], requires_grad=True); y = (x * x).sum(); y.backward(retain_graph=True); y.backward(); "
    "r = t(x.grad)",
    "x = t([1.0, 2.0], requires_grad=True); y = (x * x).sum(); y.backward(); y.backward(); r = t(x.grad)",
    "x = t([1.0, 2.0], requires_grad=True); (x * x).backward(); r = 0",
    "x = t([1.0, 2.0], requires_grad=True); (x * x).backward(gradient=M.ones(2)); r = t(x.grad)",
    "x = t([1.0, 2.0], requires_grad=True); y = x * 3; y.retain_grad(); (y * y).sum().backward(); r = t(y.grad)",
    "x = t([1.0, 2.0], requires_grad=True); r = (x.is_leaf, (x * 2).is_leaf, x.detach().requires_grad)",
    "x = t([1.0, 2.0]); x.sum().backward(); r = 0",
    "x = t([1.0, 2.0], requires_grad=True); r = M.no_grad()(lambda: (x * 2).requires_grad)()",
    # gradients at kinks and ties
    "x = t([0.0, 1.0, -1.0], requires_grad=True); (x.relu() + x.abs() + x.clamp(0, 1)).sum().backward(); "
    "r = t(x.grad)",
    "x = t([3.0, 3.0, 1.0], requires_grad=True); x.max().backward(); r = t(x.grad)",
    "x = t([[3.0, 3.0, 1.0]], requires_grad=True); x.max(1).values.sum().backward(); r = t(x.grad)",
    "x = t([[3.0, 3.0, 1.0]], requires_grad=True); x.max(1, keepdim=True)[0].sum().backward(); r = t(x.grad)",
    "x = t([[1.0, 1.0, 3.0]], requires_grad=True); x.min(-1).values.sum().backward(); r = t(x.grad)",
    "x = t([[3.0, 3.0, 1.0]], requires_grad=True); x.amax(1).sum().backward(); r = t(x.grad)",
    "x = t([0.0, 0.0], requires_grad=True); x.norm().backward(); r = t(x.grad)",
    "x = t([0.0, 0.0, 2.0], requires_grad=True); x.prod().backward(); r = t(x.grad)",
    "x = t([0.0, 2.0], requires_grad=True); (x ** 2 + x ** 0).sum().backward(); r = t(x.grad)",
    "x = t([0.5, 1.0, 4.0], requires_grad=True); lo = t([1.0, 1.0, 1.0], requires_grad=True); "
    "x.clamp(min=lo).sum().backward(); r = (t(x.grad), t(lo.grad))",
    # reductions of few elements
    "r = (t(2.0).var(), t([2.0]).std(), M.zeros(0, 3).var(0), t([1.0, 3.0]).var(correction=0))",
    # shape errors
    "r = t(np.ones((2, 2))).view(3, -1)",
    "r = t(np.ones((2, 2))).expand(3, 2)",
    "r = t(np.ones((2, 3))).split([1, 1], 1)",
    "r = t(np.ones((2, 1))).repeat(2)",
    "r = M.cat([t(np.ones((2, 3))), t(np.ones((2, 4)))])",
    "r = M.nn.LayerNorm(3)(t(np.ones((2, 4))))",
    "r = M.nn.LayerNorm(3).normalized_shape",
    "r = [10, 20, 30][t([1])]",
    "r = t([5, -5]) // 0",
    "r = t([5, -5]) % 0",
    "r = (t([5, -5]) // 2, t([5, -5]) % 3, t([-5]).div(2, rounding_mode='trunc'))",
    "x = t([1.0, 2.0]); r = (x.to(device='cpu'), x.to(device='cpu', dtype=D.f64))",
    "x = t([1.0, 2.0]); x.copy_(t([1.0, 2.0, 3.0])); r = x",
    # modules and state
    "m = M.nn.Linear(3, 2); sd = dict(m.state_dict()); b = sd.pop('bias'); sd['extra'] = b; "
    "res = m.load_state_dict(sd, strict=False); r = (list(res.missing_keys), list(res.unexpected_keys))",
    "m = M.nn.Linear(3, 2); sd = dict(m.state_dict()); del sd['bias']; m.load_state_dict(sd)",
    "m = M.nn.Linear(3, 2); sd = dict(m.state_dict()); sd['x'] = sd['bias']; m.load_state_dict(sd)",
    "m = M.nn.Linear(3, 2); sd = dict(m.state_dict()); sd['bias'] = sd['weight']; m.load_state_dict(sd, strict=False)",
    "m = M.nn.Linear(3, 2); r = (m.double() is m, m.weight.dtype == D.f64, m.float().bias.dtype == D.f32)",
    "m = M.nn.Linear(3, 2); r = (m.to('cpu') is m, m.to(device='cpu') is m, m.to('cpu').weight.dtype == D.f32)",
    "m = M.nn.Linear(3, 2); r = next(m.parameters()).shape",
    "x = t([1.0, 2.0], requires_grad=True); r = ((x * 2).detach().cpu(), M.nn.Linear(2, 1).cpu().weight.shape)",
    "m = M.nn.Linear(3, 2); m(M.ones(1, 3)).sum().backward(); m.zero_grad(set_to_none=True); r = m.weight.grad",
]


def _namespace(lib: str) -> dict:
    if lib == "torch":
        dtypes = dict(i64=torch.int64, i32=torch.int32, f64=torch.float64, f32=torch.float32, f16=torch.float16,
                      u8=torch.uint8)
        make = torch.tensor
        module = types.SimpleNamespace(**{n: getattr(torch, n) for n in dir(torch) if not n.startswith("__")})
    else:
        dtypes = dict(i64=np.int64, i32=np.int32, f64=np.float64, f32=np.float32, f16=np.float16, u8=np.uint8)
        make = tinyllm.tensor
        module = types.SimpleNamespace(**{n: getattr(tinyllm, n) for n in dir(tinyllm) if not n.startswith("__")})

    def t(values, **kw):
        if isinstance(values, (np.ndarray, torch.Tensor, tinyllm.Tensor)):
            values = np.asarray(values.numpy() if not isinstance(values, np.ndarray) else values)
        return make(values, **kw)
    return dict(M=module, D=types.SimpleNamespace(**dtypes), t=t, np=np, NAN=NAN, INF=INF)


def _plain(x):
    """An answer as nested tuples of ('tensor', dtype name, shape, values) and Python values."""
    if isinstance(x, torch.Tensor):
        return ("tensor", str(x.dtype).replace("torch.", ""), tuple(x.shape), x.detach().numpy())
    if isinstance(x, tinyllm.Tensor):
        return ("tensor", str(x.dtype), tuple(x.shape), x.numpy())
    if isinstance(x, (tuple, list)):
        return tuple(_plain(v) for v in x)
    return x


def _assert_same(a, b, where: str) -> None:
    if isinstance(a, tuple) and a[:1] == ("tensor",):
        assert isinstance(b, tuple) and b[:1] == ("tensor",), where
        assert a[1:3] == b[1:3], f"{where}: dtype/shape {a[1:3]} vs torch {b[1:3]}"
        np.testing.assert_allclose(a[3].astype(np.float64), b[3].astype(np.float64), rtol=1e-5, atol=1e-6,
                                   err_msg=where)
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs torch {b!r}"


def _run(case: str, lib: str):
    ns = _namespace(lib)
    try:
        exec(case, ns)  # noqa: S102  (the case table above, nothing read from outside)
    except (RuntimeError, IndexError, ValueError, TypeError) as e:
        return "error", [k.__name__ for k in (RuntimeError, IndexError, ValueError, TypeError) if isinstance(e, k)]
    return "value", _plain(ns["r"])


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch warns about var() of one element and .T of 0-d
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")  # torch's
@pytest.mark.parametrize("case", CASES)
def test_edge_case_matches_torch(case) -> None:
    ours, theirs = _run(case, "tinyllm"), _run(case, "torch")
    if theirs[0] == "error":
        assert ours[0] == "error", f"torch raises {theirs[1]}, tinyllm returned {ours[1]}"
        assert theirs[1][0] in ours[1], f"torch raises {theirs[1][0]}, tinyllm raises {ours[1]}"
    else:
        assert ours[0] == "value", f"tinyllm raises {ours[1]}, torch returns {theirs[1]}"
        _assert_same(ours[1], theirs[1], case)
