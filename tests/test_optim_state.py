"""tinyllm.optim: state_dict round trips (bit-identical resume) and clear errors on bad input."""
import json

import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from optim_helpers import backward_with, grad_seq, make_params
from tinyllm.optim import SGD, Adam, AdamW, Optimizer, make_schedule

# ----------------------------------------------------------------------------- state_dict

def checkpoint(opt):
    """What a checkpoint writer keeps: arrays copied, everything else through JSON."""
    sd = opt.state_dict()
    arrays = {k: np.array(v) for k, v in sd.pop("state").items()}
    sd = json.loads(json.dumps(sd))
    sd["state"] = arrays
    return sd


def build(cls, params, **kw):
    groups = [{"params": params[:2], "weight_decay": 0.1}, {"params": params[2:], "weight_decay": 0.0,
                                                             "lr_scale": 0.5}]
    return cls(groups, lr=0.02, **kw)


@pytest.mark.parametrize("cls,kw", [(AdamW, {}), (Adam, dict(betas=(0.8, 0.95))),
                                    (SGD, dict(momentum=0.9, nesterov=True))])
@pytest.mark.parametrize("assign_after", [False, True])
def test_state_dict_resume_is_bit_identical(cls, kw, assign_after):
    seq = grad_seq(steps=8, seed=5)
    sched = make_schedule("cosine", 0.05, min_lr=0.01, warmup=2, decay_iters=6)

    def train(opt, params, its):
        for it in its:
            opt.set_lr(sched(it))
            live = [i for i in range(4) if (i, it) != (3, 2)]  # one parameter sits out one step
            backward_with([params[i] for i in live], [seq[it][i] for i in live])
            opt.clip_grad_norm_(1.5)
            opt.step()
            opt.zero_grad(set_to_none=it % 2 == 0)

    ref_params = make_params(dtype=np.float32)
    ref_opt = build(cls, ref_params, **kw)
    train(ref_opt, ref_params, range(8))

    params = make_params(dtype=np.float32)
    opt = build(cls, params, **kw)
    train(opt, params, range(4))
    weights, saved = [p.numpy().copy() for p in params], checkpoint(opt)
    steps_saved = saved["state"]["group0.step"].copy()
    opt.step()  # the saved arrays are copies: stepping on must not change them
    assert np.array_equal(saved["state"]["group0.step"], steps_saved)

    if assign_after:  # fresh model, optimizer built first, then weights assigned to p.data
        fresh = make_params(seed=9, dtype=np.float32)
        opt2 = build(cls, fresh, **kw)
        for p, w in zip(fresh, weights):
            p.data = backend.asarray(w)
    else:
        fresh = [tinyllm.tensor(w, requires_grad=True) for w in weights]
        opt2 = build(cls, fresh, **kw)
    opt2.load_state_dict(saved)
    assert opt2.step_count == 4 and opt2.lr == sched(3) and opt2.param_groups[1]["lr"] == 0.5 * sched(3)
    train(opt2, fresh, range(4, 8))
    for a, b in zip(fresh, ref_params):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a.numpy(), b.numpy())
    for k, v in ref_opt.state_dict()["state"].items():
        assert np.array_equal(opt2.state_dict()["state"][k], v), k


def test_state_dict_is_json_and_copies():
    params = make_params(dtype=np.float32)
    opt = build(AdamW, params)
    backward_with(params, grad_seq()[0])
    opt.step()
    sd = opt.state_dict()
    state = sd.pop("state")
    json.dumps(sd)  # everything but the arrays is JSON
    assert sorted(state) == ["group0.exp_avg", "group0.exp_avg_sq", "group0.step",
                             "group1.exp_avg", "group1.exp_avg_sq", "group1.step"]
    assert state["group0.exp_avg"].dtype == np.float32 and state["group0.exp_avg"].shape == (16,)
    before = state["group0.exp_avg"].copy()
    opt.step()
    assert np.array_equal(state["group0.exp_avg"], before)  # a copy, not the live buffer
    assert sd["step"] == 1 and sd["param_groups"][1]["shapes"] == [[], [2, 1, 3]]


def test_load_state_dict_errors_name_the_mismatch():
    params = make_params()
    opt = build(AdamW, params)
    backward_with(params, grad_seq()[0])
    opt.step()
    good = checkpoint(opt)

    def broken(edit):
        sd = json.loads(json.dumps({k: v for k, v in good.items() if k != "state"}))
        sd["state"] = {k: v.copy() for k, v in good["state"].items()}
        edit(sd)
        return sd

    cases = [
        (lambda sd: sd.update(type="SGD"), "state of a SGD optimizer given to AdamW"),
        (lambda sd: sd["param_groups"].pop(), "1 param groups saved, 2 here"),
        (lambda sd: sd["param_groups"][0].update(num_params=3), "param group 0 has 2 parameters here, 3"),
        (lambda sd: sd["param_groups"][1]["shapes"].__setitem__(1, [3, 2]),
         r"param group 1: parameter 1 has shape \(2, 1, 3\) here, \(3, 2\) saved"),
        (lambda sd: sd["state"].pop("group1.exp_avg"), r"missing \['group1.exp_avg'\]"),
        (lambda sd: sd["state"].update({"group0.exp_avg": np.zeros(15)}), r"group0.exp_avg has shape \(15,\)"),
        (lambda sd: sd["param_groups"][0].update(betas=[0.9, 1.5]), "beta2 must be in"),
        (lambda sd: sd["param_groups"][0].pop("eps"), r"hyperparameter\(s\) \['eps'\] missing"),
        (lambda sd: sd.pop("step"), "missing key 'step'"),
        (lambda sd: sd["param_groups"][0].pop("shapes"), "'shapes' lists 0 parameters, expected 2"),
    ]
    fresh = make_params(seed=4)
    opt2 = build(AdamW, fresh)
    for edit, msg in cases:
        with pytest.raises(ValueError, match=msg):
            opt2.load_state_dict(broken(edit))
    with pytest.raises(TypeError, match="group0.step is a list, not an array"):
        opt2.load_state_dict(broken(lambda sd: sd["state"].update({"group0.step": [1, 1]})))
    assert not any(b.any() for b in opt2.state[0].values())  # nothing half-loaded
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999) and opt2.step_count == 0
    opt2.load_state_dict(good)
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999) and opt2.step_count == 1


# ----------------------------------------------------------------------------- bad input

def t(shape=(2,), dtype=np.float64, requires_grad=True):
    return tinyllm.tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


@pytest.mark.parametrize("make,err,msg", [
    (lambda: SGD([t()], lr=-0.1), ValueError, "lr must be >= 0"),
    (lambda: SGD([t()], lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: SGD([t()], lr=float("inf")), ValueError, "lr must be finite"),
    (lambda: SGD([t()], momentum=-0.5), ValueError, "momentum must be >= 0"),
    (lambda: SGD([t()], nesterov=True), ValueError, "Nesterov momentum requires"),
    (lambda: SGD([t()], momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda: SGD([t()], weight_decay=-1e-3), ValueError, "weight_decay must be >= 0"),
    (lambda: Adam([t()], betas=(0.9, 1.0)), ValueError, r"beta2 must be in \[0, 1\)"),
    (lambda: Adam([t()], betas=(-0.1, 0.9)), ValueError, "beta1 must be in"),
    (lambda: Adam([t()], betas=0.9), TypeError, "betas must be a pair"),
    (lambda: AdamW([t()], eps=-1e-8), ValueError, "eps must be >= 0"),
    (lambda: AdamW([]), ValueError, "empty parameter list"),
    (lambda: AdamW([{"params": []}]), ValueError, "empty parameter list"),
    (lambda: AdamW(t()), TypeError, "single Tensor"),
    (lambda: AdamW([t(), np.ones(2)]), TypeError, "parameter 1 is a ndarray, not a Tensor"),
    (lambda: AdamW([t(), {"params": [t()]}]), TypeError, "mixes Tensors and param-group dicts"),
    (lambda: AdamW([{"weight_decay": 0.0}]), ValueError, "has no 'params' entry"),
    (lambda: AdamW([{"params": [t()], "weight_deacy": 0.0}]), ValueError, r"unknown key\(s\) \['weight_deacy'\]"),
    (lambda: AdamW([{"params": [t()], "lr_scale": -1.0}]), ValueError, "lr_scale must be >= 0"),
    (lambda: AdamW([t(), t(dtype=np.float32)]), TypeError, "parameter 1 has dtype float32 but"),
    (lambda: AdamW([t(), t(dtype=np.int64, requires_grad=False)]), TypeError, "only floating tensors"),
    (lambda: AdamW([t() * 2]), ValueError, "not a leaf tensor"),
    (lambda: make_schedule("cosine", 1.0), ValueError, "needs decay_iters"),
])
def test_bad_input_raises_clear_errors(make, err, msg):
    with pytest.raises(err, match=msg):
        make()


def test_duplicates_and_shared_memory_are_rejected():
    a, b = t(), t()
    with pytest.raises(ValueError, match="appears twice in param group 0"):
        SGD([a, b, a])
    with pytest.raises(ValueError, match="appears in param groups 0 and param group 1"):
        SGD([{"params": [a]}, {"params": [b, a]}])
    base = backend.xp().zeros((4, 3))
    c, d = tinyllm.tensor(base[:2], requires_grad=True), tinyllm.tensor(base[1:], requires_grad=True)
    with pytest.raises(ValueError, match="parameters 0 and 1 share memory"):
        SGD([c, d])
    SGD([a, b])
    SGD([a, b])  # a second optimizer over the same (now flat-backed) parameters is fine


def test_bad_values_set_later_are_caught_at_step():
    opt = SGD([t()], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.set_lr(-1.0)
    opt.param_groups[0]["momentum"] = -1.0
    with pytest.raises(ValueError, match="param group 0: momentum must be >= 0"):
        opt.step()
    opt.param_groups[0]["momentum"] = 0.9
    opt.param_groups[0]["params"][0].grad = np.ones(2)
    with pytest.raises(ValueError, match="build a new optimizer to add momentum"):
        opt.step()


def test_empty_group_state_of_and_repr():
    a, b = t((2, 3)), t()
    opt = Adam([{"params": [a, b]}, {"params": [], "weight_decay": 0.0}], lr=0.1)
    a.grad = np.ones((2, 3))
    b.grad = np.ones(2)
    opt.step()
    st_a = opt.state_of(a)
    assert st_a["step"] == 1 and st_a["exp_avg"].shape == (2, 3)
    np.testing.assert_allclose(st_a["exp_avg"], 0.1)
    assert np.shares_memory(st_a["exp_avg_sq"], opt.state[0]["exp_avg_sq"])
    with pytest.raises(ValueError, match="not optimized by this optimizer"):
        opt.state_of(t())
    assert "group 1: 0 params" in repr(opt) and isinstance(opt, Optimizer)
    assert opt.clip_grad_norm_(1.0) == pytest.approx(np.sqrt(8.0))


def test_mixed_backends_in_one_group_are_rejected(monkeypatch):
    """Without a GPU here, pretend one parameter's array belongs to another array module."""
    import tinyllm.optim.flat as flat
    a, b = t(), t()
    foreign, real = b.data, flat.get_array_module
    monkeypatch.setattr(flat, "get_array_module", lambda *xs: object() if xs[0] is foreign else real(*xs))
    with pytest.raises(TypeError, match="param group 0: parameter 1 is on another backend"):
        SGD([a, b])
    opt = SGD([a], lr=0.1)
    a.data = foreign  # e.g. the model was moved to the GPU after the optimizer was built
    with pytest.raises(TypeError, match="not an array of this group's backend"):
        opt.step()
