"""The linear-chain CRF: log Z, path scores and Viterbi against brute-force enumeration of every
tag sequence, gradients against finite differences (float64, hypothesis), BIO/BIOES constraints,
and a PyTorch autograd reference of the same forward algorithm."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from gradcases import grad_case
from tinyllm.gradcheck import gradcheck
from tinyllm.nn import functional_call
from tinyllm.models.crf import CRF, allowed_transitions, forward_scores, path_score, viterbi


def brute_force(e, start, trans, end, lengths):
    """log Z, best path and best score of every row, by enumerating all K^n sequences."""
    k = e.shape[2]
    out = []
    for b, n in enumerate(lengths):
        scores = {}
        for y in itertools.product(range(k), repeat=n):
            s = start[y[0]] + sum(e[b, t, y[t]] for t in range(n)) + end[y[-1]]
            s += sum(trans[y[t - 1], y[t]] for t in range(1, n))
            scores[y] = s
        vals = np.array([v for v in scores.values() if np.isfinite(v)])
        log_z = vals.max() + np.log(np.exp(vals - vals.max()).sum())
        best = max(scores, key=scores.get)
        out.append((log_z, best, scores[best], scores))
    return out


def random_problem(seed, b=3, t=4, k=5):
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 1.5, (b, t, k))
    start, end = rng.normal(0, 1, k), rng.normal(0, 1, k)
    trans = rng.normal(0, 1, (k, k))
    lengths = rng.integers(1, t + 1, b)
    lengths[0] = t
    mask = np.arange(t)[None, :] < lengths[:, None]
    return e, start, trans, end, lengths, mask


@pytest.mark.parametrize("seed", range(6))
def test_log_partition_score_and_viterbi_match_enumeration(seed):
    e, start, trans, end, lengths, mask = random_problem(seed, t=1 + seed % 4)
    _, log_z = forward_scores(e, start, trans, end, mask)
    path, score = viterbi(e, start, trans, end, mask)
    for b, (bz, best, best_score, scores) in enumerate(brute_force(e, start, trans, end, lengths)):
        assert abs(log_z[b] - bz) < 1e-10
        n = lengths[b]
        assert tuple(path[b, :n]) == best and (path[b, n:] == -1).all()
        assert abs(score[b] - best_score) < 1e-10
        y = np.zeros((1, e.shape[1]), dtype=np.int64)
        y[0, :n] = np.random.default_rng(b).integers(0, 5, n)
        assert abs(path_score(e[b:b + 1], start, trans, end, y, mask[b:b + 1])[0] - scores[tuple(y[0, :n])]) < 1e-10


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_constrained_viterbi_and_partition_skip_forbidden_paths(scheme):
    tags = ["O", "B-PER", "I-PER"] + (["E-PER", "S-PER"] if scheme == "BIOES" else ["B-LOC", "I-LOC"])
    ok_s, ok_t, ok_e = allowed_transitions(tags, scheme)
    crf = CRF(5, tags, scheme)
    rng = np.random.default_rng(1)
    e = rng.normal(0, 2, (2, 4, 5))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool)
    start, trans, end = (p.data.astype(np.float64) for p in crf._scores())
    _, log_z = forward_scores(e, start, trans, end, mask)
    path, _ = crf.decode(tinyllm.tensor(e), mask)
    for b, (bz, best, _, scores) in enumerate(brute_force(e, start, trans, end, [4, 2])):
        assert abs(log_z[b] - bz) < 1e-10
        assert tuple(path[b][:len(best)]) == best and np.isfinite(scores[best])
        y = best
        assert ok_s[y[0]] and ok_e[y[-1]] and all(ok_t[i, j] for i, j in zip(y, y[1:]))


def test_allowed_transitions_bio_and_bioes():
    s, t, e = allowed_transitions(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "BIO")
    assert s.tolist() == [True, True, False, True, False] and e.all()
    assert not t[0, 2] and t[1, 2] and t[2, 2] and not t[1, 4] and t[4, 0] and t[2, 3]
    s, t, e = allowed_transitions(["O", "B-X", "I-X", "E-X", "S-X"], "BIOES")
    assert s.tolist() == [True, True, False, False, True] and e.tolist() == [True, False, False, True, True]
    assert t[1, 2] and t[1, 3] and not t[1, 0] and not t[1, 1] and t[3, 0] and t[4, 1] and not t[0, 3]
    with pytest.raises(ValueError, match="BIOES"):
        allowed_transitions(["O", "S-X"], "BIO")
    with pytest.raises(ValueError, match="is not O or"):
        allowed_transitions(["O", "PER"], "BIO")


def _nll(crf, e, tags, mask):
    def fn(em, s, tr, en):
        params = {"start_transitions": s, "transitions": tr, "end_transitions": en}
        return functional_call(crf, params, em, tags, mask, reduction="none")
    return fn


@grad_case("CRFNegLogLikelihood")
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.integers(1, 4), b=st.integers(1, 3), constrained=st.booleans())
def test_crf_nll_gradient_matches_finite_differences(seed, t, b, constrained):
    rng = np.random.default_rng(seed)
    k = 5
    names = ["O", "B-A", "I-A", "B-B", "I-B"]
    crf = CRF(k, names, "BIO") if constrained else CRF(k)
    lengths = rng.integers(1, t + 1, b)
    mask = np.arange(t)[None, :] < lengths[:, None]
    tags = np.where(mask, rng.choice([0, 1, 3], (b, t)), -100)        # O / B-x only: always allowed
    inputs = [tinyllm.tensor(rng.normal(0, 1, shape), requires_grad=True)
              for shape in ((b, t, k), (k,), (k, k), (k,))]
    gradcheck(_nll(crf, None, tags, mask), *inputs, atol=1e-7, rtol=1e-6)


def test_nll_is_minus_log_probability_and_reductions():
    e, start, trans, end, lengths, mask = random_problem(3)
    crf = CRF(5)
    crf.start_transitions.data[...], crf.transitions.data[...], crf.end_transitions.data[...] = start, trans, end
    start, trans, end = (p.data.astype(np.float64) for p in (crf.start_transitions, crf.transitions,
                                                              crf.end_transitions))   # float32 parameters
    tags = np.where(mask, np.random.default_rng(0).integers(0, 5, mask.shape), -100)
    nll = crf(tinyllm.tensor(e), tags, mask, reduction="none").data
    for b, (bz, _, _, scores) in enumerate(brute_force(e, start, trans, end, lengths)):
        assert abs(nll[b] - (bz - scores[tuple(tags[b, :lengths[b]])])) < 1e-10
    assert abs(float(crf(tinyllm.tensor(e), tags, mask).data) - nll.mean()) < 1e-12
    assert abs(float(crf(tinyllm.tensor(e), tags, mask, reduction="sum").data) - nll.sum()) < 1e-12


@pytest.mark.parametrize("mask, match", [
    ([[0, 1, 1]], "first position"), ([[1, 0, 1]], "prefix")])
def test_bad_masks_are_refused(mask, match):
    crf = CRF(3)
    with pytest.raises(ValueError, match=match):
        crf(tinyllm.tensor(np.zeros((1, 3, 3))), np.zeros((1, 3), dtype=np.int64), np.array(mask, dtype=bool))


def test_forbidden_gold_path_and_bad_tags_are_clear_errors():
    crf = CRF(3, ["O", "B-X", "I-X"], "BIO")
    e = tinyllm.tensor(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="constraints forbid"):
        crf(e, np.array([[0, 2]]))
    with pytest.raises(ValueError, match="outside"):
        crf(e, np.array([[0, 7]]))


def test_against_a_torch_autograd_reference():
    torch = pytest.importorskip("torch")
    e, start, trans, end, lengths, mask = random_problem(11, b=4, t=6, k=5)
    tags = np.where(mask, np.random.default_rng(2).integers(0, 5, mask.shape), 0)
    te, ts, ttr, ten = (torch.tensor(a, requires_grad=True) for a in (e, start, trans, end))
    tm = torch.tensor(mask)
    alpha = ts + te[:, 0]
    for t in range(1, e.shape[1]):
        nxt = torch.logsumexp(alpha[:, :, None] + ttr, dim=1) + te[:, t]
        alpha = torch.where(tm[:, t, None], nxt, alpha)
    log_z = torch.logsumexp(alpha + ten, dim=1)
    y = torch.tensor(tags)
    gold = ts[y[:, 0]] + (te.gather(2, y[:, :, None])[:, :, 0] * tm).sum(1)
    gold = gold + (ttr[y[:, :-1], y[:, 1:]] * tm[:, 1:]).sum(1) + ten[y[torch.arange(4), tm.sum(1) - 1]]
    (log_z - gold).mean().backward()
    crf = CRF(5)
    ours = [tinyllm.tensor(a, requires_grad=True) for a in (e, start, trans, end)]
    loss = _nll(crf, None, tags, mask)(*ours).mean()
    loss.backward()
    assert abs(float(loss.data) - float((log_z - gold).mean().detach())) < 1e-12
    for a, b in zip(ours, (te, ts, ttr, ten)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), atol=1e-12)


def test_torchcrf_if_installed():
    torchcrf = pytest.importorskip("torchcrf")
    torch = pytest.importorskip("torch")
    e, start, trans, end, lengths, mask = random_problem(5, b=3, t=4, k=5)
    crf = CRF(5)
    start, trans, end = (p.data.astype(np.float64) for p in (crf.start_transitions, crf.transitions,
                                                              crf.end_transitions))
    ref = torchcrf.CRF(5, batch_first=True).double()
    with torch.no_grad():
        ref.start_transitions[:], ref.transitions[:], ref.end_transitions[:] = (torch.tensor(a)
                                                                                for a in (start, trans, end))
    tags = np.where(mask, 1, 0)
    want = -ref(torch.tensor(e), torch.tensor(tags), torch.tensor(mask), reduction="none").detach().numpy()
    np.testing.assert_allclose(crf(tinyllm.tensor(e), tags, mask, reduction="none").data, want, atol=1e-10)
    assert [list(p[p >= 0]) for p in crf.decode(tinyllm.tensor(e), mask)[0]] == ref.decode(torch.tensor(e),
                                                                                           torch.tensor(mask))
