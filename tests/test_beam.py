"""Greedy and beam search over an encoder-decoder: beam 1 == greedy, beam == brute force on a tiny model."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from tinyllm import backend, no_grad
from tinyllm.decoding.beam import beam_search, greedy_search, length_penalty
from tinyllm.models import Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 1, 2


@pytest.fixture(autouse=True)
def _float64():
    previous = backend.get_default_dtype()
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype(previous)


def model(vocab: int = 6, seed: int = 0, **kw) -> Seq2Seq:
    """A random tiny model whose next-token distributions are flat enough for greedy search to go wrong."""
    backend.manual_seed(seed)
    m = Seq2Seq(Seq2SeqConfig(vocab_size=vocab, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0,
                              tie_weights=False, **kw))
    rng = np.random.default_rng(seed)
    m.lm_head.weight.data[...] = rng.normal(0, 0.5, m.lm_head.weight.shape)
    m.tgt_embed.weight.data[...] = rng.normal(0, 1.0, m.tgt_embed.weight.shape)
    return m.eval()


def sequence_logprob(m: Seq2Seq, src: np.ndarray, tokens: list[int], ended: bool) -> float:
    """log p(tokens [EOS if ended] | src) by teacher forcing, with PAD and BOS banned as the search bans them."""
    tgt_in = np.array([[BOS] + tokens])
    with no_grad():
        logits, _ = m(src[None], tgt_in)
    z = logits.data[0].astype(np.float64)
    z[:, [PAD, BOS]] = -np.inf
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    want = tokens + [EOS] if ended else tokens
    return float(sum(logp[t, y] for t, y in enumerate(want)))


def brute_force(m: Seq2Seq, src: np.ndarray, max_len: int, alpha: float) -> tuple[list[int], float]:
    """The best length-normalized target of every one up to ``max_len`` tokens (EOS-ended or cut at max_len)."""
    symbols = [t for t in range(m.config.vocab_size) if t not in (PAD, BOS, EOS)]
    best: tuple[list[int], float] = ([], -np.inf)
    for n in range(max_len):                                     # n tokens then EOS: n + 1 produced
        for toks in itertools.product(symbols, repeat=n):
            s = sequence_logprob(m, src, list(toks), True) / length_penalty(n + 1, alpha)
            best = max(best, (list(toks), s), key=lambda b: b[1])
    for toks in itertools.product(symbols, repeat=max_len):      # cut at max_len without EOS
        s = sequence_logprob(m, src, list(toks), False) / length_penalty(max_len, alpha)
        best = max(best, (list(toks), s), key=lambda b: b[1])
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_size_one_is_greedy(seed) -> None:
    m = model(vocab=9, seed=seed)
    src = np.array([[3, 4, 5, 6], [7, 8, 3, 0], [5, 5, 0, 0]])
    greedy = greedy_search(m, src, max_new_tokens=6)
    beams = beam_search(m, src, beam=1, max_new_tokens=6, alpha=0.0)
    assert [h.tokens for h in greedy] == [b[0].tokens for b in beams]
    for g, (b,) in zip(greedy, beams):
        assert g.logprob == pytest.approx(b.logprob, abs=1e-9)


CASES = [(0, 0.0), (1, 0.6), (2, 1.0), (3, 2.0), (4, 0.0), (5, 0.6)]


def test_greedy_search_misses_the_best_sequence_on_some_of_these_models() -> None:
    """So that the enumeration test below can tell a beam search from a greedy one."""
    src = np.array([[3, 4, 5], [5, 3, 0]])
    misses = 0
    for seed, alpha in CASES:
        m = model(vocab=6, seed=seed)
        for row, g in zip(src, greedy_search(m, src, 3)):
            misses += brute_force(m, row, 3, alpha)[0] != g.tokens
    assert misses >= 1


@pytest.mark.parametrize("seed, alpha", CASES)
def test_beam_search_finds_the_best_sequence_of_all(seed, alpha) -> None:
    m = model(vocab=6, seed=seed)                                 # 3 symbols + EOS can be produced
    src = np.array([[3, 4, 5], [5, 3, 0]])
    found = beam_search(m, src, beam=36, max_new_tokens=3, alpha=alpha)
    for row, (best,) in zip(src, found):
        tokens, score = brute_force(m, row, 3, alpha)
        assert best.score == pytest.approx(score, abs=1e-9)
        assert best.tokens == tokens


def test_hypothesis_scores_are_the_teacher_forced_log_probabilities() -> None:
    m = model(vocab=9, seed=4)
    src = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    for row, hyps in zip(src, beam_search(m, src, beam=3, max_new_tokens=5, alpha=0.6, n_best=3)):
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            ended = len(h.tokens) < 5 or sequence_logprob(m, row, h.tokens, True) == pytest.approx(h.logprob)
            assert sequence_logprob(m, row, h.tokens, ended) == pytest.approx(h.logprob, abs=1e-9)
            produced = len(h.tokens) + ended
            assert h.score == pytest.approx(h.logprob / length_penalty(produced, 0.6), abs=1e-9)


def test_a_batch_decodes_each_source_as_alone() -> None:
    m = model(vocab=9, seed=5)
    src = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    together = beam_search(m, src, beam=4, max_new_tokens=5)
    alone = [beam_search(m, src[i:i + 1, :n], beam=4, max_new_tokens=5)[0] for i, n in enumerate((4, 2))]
    assert [h[0].tokens for h in together] == [h[0].tokens for h in alone]


def test_output_length_is_bounded_and_special_tokens_never_appear() -> None:
    m = model(vocab=9, seed=6)
    src = np.array([[3, 4, 5, 6]])
    for hyp in [greedy_search(m, src, 3)[0], beam_search(m, src, 3, 3)[0][0]]:
        assert len(hyp.tokens) <= 3
        assert not {PAD, BOS, EOS} & set(hyp.tokens)


@pytest.mark.parametrize("kw, message", [(dict(beam=0), "beam"), (dict(alpha=-1.0), "alpha"),
                                         (dict(n_best=4), "n_best"), (dict(max_new_tokens=0), "max_new_tokens")])
def test_bad_arguments_are_refused(kw, message) -> None:
    args = dict(beam=3, max_new_tokens=4) | kw
    with pytest.raises(ValueError, match=message):
        beam_search(model(), np.array([[3, 4]]), **args)


@pytest.mark.parametrize("beam, alpha", [(1, 0.0), (3, 0.6), (5, 1.0)])
def test_batched_beam_search_equals_one_source_at_a_time(beam, alpha) -> None:
    """Sources of different lengths in one batch (finishing at different steps, leaving the batch) get
    exactly the hypotheses, log-probabilities and scores they get alone."""
    m = model(vocab=9, seed=7)
    rng = np.random.default_rng(0)
    lengths = [5, 1, 3, 4, 2, 5, 3]
    src = np.zeros((len(lengths), 5), dtype=np.int64)
    for i, n in enumerate(lengths):
        src[i, :n] = rng.integers(3, 9, n)
    together = beam_search(m, src, beam=beam, max_new_tokens=6, alpha=alpha, n_best=beam)
    for i, n in enumerate(lengths):
        (alone,) = beam_search(m, src[i:i + 1, :n], beam=beam, max_new_tokens=6, alpha=alpha, n_best=beam)
        assert [h.tokens for h in together[i]] == [h.tokens for h in alone]
        np.testing.assert_allclose([h.logprob for h in together[i]], [h.logprob for h in alone], atol=1e-10)
        np.testing.assert_allclose([h.score for h in together[i]], [h.score for h in alone], atol=1e-10)


def test_a_source_whose_beams_have_all_ended_leaves_the_batch() -> None:
    """Early finish: once a source has K finished targets its rows are no longer decoded."""
    m = model(vocab=9, seed=8)
    src = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    rows: list[int] = []
    step = m.step_logits

    def steered(tgt_new, cache):                 # rows are source-major: the first K are source 0's
        rows.append(tgt_new.shape[0])
        out = step(tgt_new, cache).copy()
        if len(rows) == 1:
            out[:, EOS] = -50.0                  # nothing ends at step 1
        elif len(rows) == 2:
            out[:3, EOS] = 50.0                  # every beam of source 0 ends at step 2
        return out

    m.step_logits = steered
    hyps = beam_search(m, src, beam=3, max_new_tokens=7, n_best=3)
    assert rows[:3] == [6, 6, 3], rows
    assert len(hyps[0]) == 3 and all(len(h.tokens) == 1 for h in hyps[0])
    assert len(hyps[1]) == 3 and max(len(h.tokens) for h in hyps[1]) > 1
