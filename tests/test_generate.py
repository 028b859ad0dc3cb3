"""Sampling (tinyllm.decoding.sampling) and decoding a GPT (tinyllm.decoding.generate): greedy,
temperature, top-k, top-p, seeds, the KV cache, cropping past block_size, stop tokens, streaming."""
import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.decoding import (check_sampling_args, generate, generate_stream, sample_next, softmax, top_k_filter,
                              top_p_filter)
from tinyllm.models import GPT, GPTConfig


def tiny_gpt(block_size=8, vocab=13, dropout=0.0, n_layer=2):
    tinyllm.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=2, n_embd=16,
                          dropout=dropout))
    for p in model.parameters():  # larger weights than GPT-2's init: peaked, varied next-token distributions
        p.data += backend.asarray(np.random.default_rng(1).normal(0, 0.3, p.shape).astype(p.dtype))
    return model


# ----------------------------------------------------------------------------- sampling functions

def test_greedy_is_argmax_and_ignores_rng():
    logits = np.array([[0.1, 2.0, -1.0, 1.9], [5.0, 0.0, 0.0, 4.0]])
    assert sample_next(logits, greedy=True).tolist() == [1, 0]
    assert sample_next(logits, greedy=True, temperature=0.0).tolist() == [1, 0]  # temperature unused


def test_top_k_keeps_exactly_k_candidates():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 20))
    for k in (1, 3, 7):
        kept = np.isfinite(top_k_filter(logits, k))
        assert (kept.sum(axis=1) == k).all()
        for row, keep in zip(logits, kept):
            assert set(np.flatnonzero(keep)) == set(np.argsort(-row)[:k])
    draws = np.stack([sample_next(logits, top_k=3, rng=rng) for _ in range(300)])   # (300, 4)
    for b in range(4):
        assert set(draws[:, b]) <= set(np.argsort(-logits[b])[:3])
        assert len(set(draws[:, b])) > 1
    assert np.isfinite(top_k_filter(logits, 50)).all()  # k >= V keeps everything


def test_top_p_keeps_the_smallest_nucleus():
    probs = np.array([[0.05, 0.5, 0.15, 0.3]])
    logits = np.log(probs)
    assert np.isfinite(top_p_filter(logits, 0.6)).tolist() == [[False, True, False, True]]   # 0.5 < 0.6 <= 0.8
    assert np.isfinite(top_p_filter(logits, 0.4)).tolist() == [[False, True, False, False]]  # the top token alone
    assert np.isfinite(top_p_filter(logits, 0.9)).tolist() == [[False, True, True, True]]    # 0.8 < 0.9 <= 0.95
    assert np.isfinite(top_p_filter(logits, 1.0)).all()
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_next(logits, top_p=0.6, rng=rng) for _ in range(400)])
    assert set(draws) == {1, 3}
    assert abs((draws == 1).mean() - 0.5 / 0.8) < 0.08                                        # renormalized


def test_temperature_scales_the_distribution():
    logits = np.array([[2.0, 1.0, 0.0]])
    rng = np.random.default_rng(0)
    for t in (0.5, 1.0, 2.0):
        draws = np.concatenate([sample_next(logits, temperature=t, rng=rng) for _ in range(3000)])
        freq = np.bincount(draws, minlength=3) / draws.size
        np.testing.assert_allclose(freq, softmax(logits / t)[0], atol=0.03)
    cold = np.concatenate([sample_next(logits, temperature=0.05, rng=rng) for _ in range(200)])
    assert (cold == 0).all()


def test_seeded_sampling_is_reproducible():
    logits = np.random.default_rng(5).normal(size=(3, 50))
    a = [sample_next(logits, top_k=10, top_p=0.9, rng=np.random.default_rng(7)) for _ in range(3)]
    b = [sample_next(logits, top_k=10, top_p=0.9, rng=np.random.default_rng(7)) for _ in range(3)]
    assert all((x == y).all() for x, y in zip(a, b))


def test_zero_probability_tokens_are_never_drawn():
    logits = np.array([[-np.inf, -np.inf, 0.0, -np.inf, 0.0]])
    draws = np.concatenate([sample_next(logits, rng=np.random.default_rng(s)) for s in range(200)])
    assert set(draws) == {2, 4}


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=0.0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
])
def test_bad_sampling_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_sampling_args(**kwargs)
    with pytest.raises(ValueError, match=match):
        sample_next(np.zeros((1, 4)), **kwargs)


def test_bad_logits():
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        sample_next(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        sample_next(np.array([[0.0, np.nan]]))


# ----------------------------------------------------------------------------- generate(GPT, ...)

def test_generate_shape_dtype_and_prompt_kept():
    model = tiny_gpt()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    out = generate(model, prompt, 5, seed=0)
    assert out.shape == (2, 8) and out.dtype == np.int64
    assert (out[:, :3] == prompt).all()
    assert generate(model, prompt, 0).tolist() == prompt.tolist()


@pytest.mark.parametrize("sampling", [dict(greedy=True), dict(seed=11), dict(seed=5, top_k=4, temperature=0.8),
                                      dict(seed=2, top_p=0.9)])
def test_kv_cache_gives_exactly_the_uncached_tokens(sampling):
    model = tiny_gpt(block_size=8)
    prompt = np.array([[1, 2, 3], [7, 0, 12]])
    for n in (4, 20):   # 20: far beyond block_size, the cache refills many times
        cached = generate(model, prompt, n, use_cache=True, **sampling)
        uncached = generate(model, prompt, n, use_cache=False, **sampling)
        np.testing.assert_array_equal(cached, uncached)
    assert len(set(cached[0, 3:].tolist())) > 1  # the model does not just repeat one token


def test_cropping_matches_a_manual_sliding_window():
    model = tiny_gpt(block_size=6)
    prompt = np.array([[3, 1, 4, 1, 5, 9, 2, 6, 5]])          # longer than block_size already
    out = generate(model, prompt, 10, greedy=True)
    tokens = prompt.copy()
    model.eval()
    with tinyllm.no_grad():
        for _ in range(10):
            logits, _ = model(tokens[:, -6:])
            nxt = logits.numpy()[:, -1].argmax(axis=-1)
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
    np.testing.assert_array_equal(out, tokens)


def test_forward_rejects_too_long_input():
    model = tiny_gpt(block_size=6)
    with pytest.raises(ValueError, match="exceeds block_size 6"):
        model(np.zeros((1, 7), dtype=np.int64))


def test_seeded_generation_is_reproducible_and_seeds_differ():
    model = tiny_gpt()
    prompt = np.array([[1, 2]])
    a = generate(model, prompt, 15, seed=123)
    b = generate(model, prompt, 15, seed=123)
    c = generate(model, prompt, 15, seed=124)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    tinyllm.manual_seed(9)
    d = generate(model, prompt, 15)            # no seed: the global seeded generator
    tinyllm.manual_seed(9)
    np.testing.assert_array_equal(d, generate(model, prompt, 15))


def test_stop_token_stops_early():
    model = tiny_gpt()
    prompt = np.array([[1, 2, 3]])
    free = generate(model, prompt, 12, greedy=True)
    stop = int(free[0, 5])                    # the third new token
    first = 3 + free[0, 3:].tolist().index(stop)
    out = generate(model, prompt, 12, greedy=True, stop_token=stop)
    np.testing.assert_array_equal(out, free[:, :first + 1])


def test_stop_token_in_a_batch_pads_finished_rows():
    model = tiny_gpt()
    prompt = np.array([[1, 2, 3], [9, 8, 7]])
    free = generate(model, prompt, 10, greedy=True)
    stop = int(free[0, 4])
    out = generate(model, prompt, 10, greedy=True, stop_token=stop)
    for row, full in zip(out, free):
        hits = np.flatnonzero(full[3:] == stop)
        if hits.size:
            k = 3 + hits[0]
            np.testing.assert_array_equal(row[:k + 1], full[:k + 1])
            assert (row[k:] == stop).all()
    finished = [(r[3:] == stop).any() for r in out]
    assert all(finished) or out.shape[1] == 13


def test_generate_stream_yields_ints_then_arrays_and_restores_mode():
    model = tiny_gpt(dropout=0.1)
    model.train()
    single = list(generate_stream(model, np.array([[1, 2]]), 5, greedy=True))
    assert all(isinstance(t, int) for t in single) and len(single) == 5
    assert single == generate(model, np.array([[1, 2]]), 5, greedy=True)[0, 2:].tolist()
    batch = list(generate_stream(model, np.array([[1, 2], [3, 4]]), 3, greedy=True))
    assert all(isinstance(t, np.ndarray) and t.shape == (2,) for t in batch)
    assert model.training and all(m.training for m in model.modules())
    assert tinyllm.is_grad_enabled()
    stream = generate_stream(model, np.array([[1, 2]]), 5, greedy=True)
    next(stream)
    assert model.training and tinyllm.is_grad_enabled()   # between tokens, the caller's state is back


def test_generation_is_deterministic_in_eval_despite_dropout():
    model = tiny_gpt(dropout=0.5)
    model.train()
    a = generate(model, np.array([[1, 2]]), 8, greedy=True)
    b = generate(model, np.array([[1, 2]]), 8, greedy=True)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=-1), "max_new_tokens"), (dict(stop_token=13), "stop_token"),
    (dict(temperature=0.0), "temperature"), (dict(top_p=2.0), "top_p"),
])
def test_generate_argument_errors_are_raised_at_the_call(kwargs, match):
    model = tiny_gpt()
    args = dict(max_new_tokens=3, **kwargs) if "max_new_tokens" not in kwargs else kwargs
    with pytest.raises(ValueError, match=match):
        generate_stream(model, np.array([[1, 2]]), **args)   # no iteration needed


def test_generate_rejects_bad_prompts():
    model = tiny_gpt()
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        generate(model, np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="integer"):
        generate(model, np.array([[1.0, 2.0]]), 3)
    with pytest.raises(ValueError, match=r"\[0, 13\)"):
        generate(model, np.array([[1, 13]]), 3)


# ----------------------------------------------------------------------------- any Decoder

class CountingDecoder:
    """Not a GPT: a Decoder whose next token is always (last token + 1) mod V, recording what it is fed."""

    class Cache:
        def __init__(self):
            self.pos = 0

        def reset(self):
            self.pos = 0

    def __init__(self, vocab=5, block=4):
        self.config = GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=1, n_embd=1)
        self.fed = []
        self.training = True

    def modules(self):
        return [self]

    def eval(self):
        self.training = False

    def new_cache(self, batch):
        return self.Cache()

    def next_logits(self, idx, cache=None):
        ids = backend.to_numpy(idx)
        self.fed.append((ids.shape[1], None if cache is None else cache.pos))
        if cache is not None:
            assert cache.pos + ids.shape[1] <= self.config.block_size
            cache.pos += ids.shape[1]
        return np.eye(self.config.vocab_size)[(ids[:, -1] + 1) % self.config.vocab_size] * 10.0


def test_generate_drives_any_decoder_with_the_one_cache_policy():
    model = CountingDecoder(vocab=5, block=4)
    out = generate(model, np.array([[0, 1]]), 6, greedy=True)
    assert out[0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    # (tokens fed, cache.pos before): prefill the 2-token prompt, then one token at a time until the
    # context holds block_size (4) tokens; from then on the window slides every step and every position
    # changes, so each step restarts the cache from the last 4 tokens (no old key is reused)
    assert model.fed == [(2, 0), (1, 2), (1, 3), (4, 0), (4, 0), (4, 0)]
    assert model.training                                    # its mode is restored
    model.fed = []
    generate(model, np.array([[0, 1]]), 3, greedy=True, use_cache=False)
    assert model.fed == [(2, None), (3, None), (4, None)]    # no cache: the whole (cropped) window each step
