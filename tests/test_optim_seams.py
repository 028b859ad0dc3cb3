"""The optimizer's seams for data-parallel training: grad_buffers, grad_mask/bind_grads,
param_buffers and step counts."""
import numpy as np
import pytest

from optim_helpers import SHAPES, backward_with, grad_seq, make_params
from tinyllm.optim import SGD, AdamW


def test_grad_buffers_hold_the_gradients_and_edits_reach_the_step():
    params = make_params()
    opt = SGD([{"params": params[:2]}, {"params": params[2:]}], lr=1.0)
    (grads,) = grad_seq(steps=1)
    backward_with(params, grads)
    bufs = opt.grad_buffers()
    assert len(bufs) == 2                                    # one buffer per param group
    np.testing.assert_array_equal(bufs[0], np.concatenate([g.reshape(-1) for g in grads[:2]]))
    np.testing.assert_array_equal(bufs[1], np.concatenate([g.reshape(-1) for g in grads[2:]]))
    before = [p.data.copy() for p in params]
    for b in bufs:                                           # what an in-place all-reduce does
        b[...] = 3.0
    for p in params:                                         # p.grad are views of the buffers
        np.testing.assert_array_equal(p.grad, np.full(p.shape, 3.0))
    opt.step()
    for p, b in zip(params, before):                         # the step used the edited values
        np.testing.assert_allclose(p.data, b - 3.0, rtol=0, atol=1e-15)


def test_grad_buffers_copy_in_fresh_gradients_after_set_to_none():
    params = make_params()
    opt = SGD(params, lr=1.0)
    opt.zero_grad(set_to_none=True)
    (grads,) = grad_seq(steps=1)
    backward_with(params, grads)                             # backward assigns fresh arrays
    assert all(p.grad is not opt._flat[0].grad_views[i] for i, p in enumerate(params))
    (buf,) = opt.grad_buffers()
    np.testing.assert_array_equal(buf, np.concatenate([g.reshape(-1) for g in grads]))
    buf *= 0.5
    np.testing.assert_array_equal(params[0].grad, grads[0] * 0.5)


def test_a_parameter_without_a_gradient_has_zeros_in_the_buffer_and_no_update():
    params = make_params()
    opt = AdamW(params, lr=0.1, weight_decay=0.1)
    (grads,) = grad_seq(steps=1)
    backward_with(params[:1] + params[2:], grads[:1] + grads[2:])   # params[1] gets none
    (buf,) = opt.grad_buffers()
    a, b = opt._flat[0].offsets[1:3]
    assert not buf[a:b].any()
    np.testing.assert_array_equal(opt.grad_mask(), [1, 0, 1, 1])
    before = params[1].data.copy()
    opt.step()
    np.testing.assert_array_equal(params[1].data, before)
    assert opt.state_of(params[1])["step"] == 0


def test_bind_grads_updates_a_parameter_whose_gradient_came_from_elsewhere():
    params = make_params()
    opt = SGD(params, lr=1.0)
    opt.zero_grad(set_to_none=True)
    (buf,) = opt.grad_buffers()
    buf[...] = 2.0                                           # the all-reduced mean of other processes
    opt.bind_grads(np.array([0, 3, 0, 1]))                   # the reduced mask: some process had one
    assert params[0].grad is None and params[1].grad is not None
    before = [p.data.copy() for p in params]
    opt.step()
    np.testing.assert_array_equal(params[0].data, before[0])
    np.testing.assert_allclose(params[1].data, before[1] - 2.0, atol=1e-15)
    with pytest.raises(ValueError, match="mask has 3 entries"):
        opt.bind_grads(np.zeros(3))


def test_param_buffers_and_step_counts_carry_the_whole_state():
    a, b = make_params(seed=0), make_params(seed=5)
    opt_a, opt_b = AdamW(a, lr=0.1), AdamW(b, lr=0.1)
    for grads in grad_seq(steps=3):
        backward_with(a, grads)
        opt_a.step()
        opt_a.zero_grad()
    for src, dst in zip(opt_a.param_buffers(), opt_b.param_buffers()):   # a "broadcast"
        dst[...] = src
    opt_b.set_step_counts(opt_a.step_counts())
    (grads,) = grad_seq(steps=1, seed=9)
    for params, opt in ((a, opt_a), (b, opt_b)):
        backward_with(params, grads)
        opt.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt_b.step_count == 4
    with pytest.raises(ValueError, match="do not fit"):
        opt_b.set_step_counts([1, 2])


def test_param_buffers_pick_up_weights_assigned_from_outside():
    params = make_params()
    opt = SGD(params, lr=1.0)
    params[0].data = np.full(SHAPES[0], 7.0)
    assert (opt.param_buffers()[0][:12] == 7.0).all()
