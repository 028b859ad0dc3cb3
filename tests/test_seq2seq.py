"""The encoder-decoder Transformer: gradients, masks, causality, the decoding cache, the registry record."""
from __future__ import annotations

import numpy as np
import pytest

from tinyllm import backend, no_grad
from tinyllm.gradcheck_cases import all_cases, run_case
from tinyllm.models import Seq2Seq, Seq2SeqConfig, registry


@pytest.fixture(autouse=True)
def _float64():
    previous = backend.get_default_dtype()
    backend.set_default_dtype("float64")
    backend.manual_seed(0)
    yield
    backend.set_default_dtype(previous)


def tiny(**kw) -> Seq2Seq:
    cfg = dict(vocab_size=11, block_size=10, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    cfg.update(kw)
    return Seq2Seq(Seq2SeqConfig(**cfg)).eval()


@pytest.mark.parametrize("name", ["models.Seq2Seq", "models.Seq2Seq-postLN"])
def test_the_whole_tiny_model_passes_gradcheck_on_every_parameter(name) -> None:
    result = run_case(all_cases()[name], seed=0, dtype="float64")
    assert result.passed, result


@pytest.mark.parametrize("kw", [{}, dict(norm_first=False, positions="learned")])
def test_source_padding_changes_nothing_for_the_real_tokens(kw) -> None:
    m = tiny(**kw)
    src = np.array([[3, 4, 5, 6]])
    padded = np.array([[3, 4, 5, 6, 0, 0]])
    tgt = np.array([[1, 7, 8]])
    with no_grad():
        a, _ = m(src, tgt)
        b, _ = m(padded, tgt)
        mem_a, mem_b = m.encode(src).data, m.encode(padded).data
    np.testing.assert_allclose(a.data, b.data, atol=1e-10)
    np.testing.assert_allclose(mem_a, mem_b[:, :4], atol=1e-10)


def test_the_decoder_is_causal_and_target_padding_is_not_seen() -> None:
    m = tiny()
    src = np.array([[3, 4, 5]])
    with no_grad():
        a, _ = m(src, np.array([[1, 7, 8, 9]]))
        b, _ = m(src, np.array([[1, 7, 3, 0]]))
    np.testing.assert_allclose(a.data[:, :2], b.data[:, :2], atol=1e-10)
    assert not np.allclose(a.data[:, 2:], b.data[:, 2:])


def test_the_output_depends_on_the_source_through_cross_attention() -> None:
    m = tiny()
    with no_grad():
        a, _ = m(np.array([[3, 4, 5]]), np.array([[1, 7]]))
        b, _ = m(np.array([[3, 4, 6]]), np.array([[1, 7]]))
    assert not np.allclose(a.data, b.data)


@pytest.mark.parametrize("kw", [{}, dict(norm_first=False, positions="learned", share_embeddings=True)])
def test_cached_decoding_gives_the_teacher_forced_scores(kw) -> None:
    m = tiny(**kw)
    src = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])
    tgt = np.array([[1, 5, 6, 7], [1, 9, 8, 3]])
    with no_grad():
        full, _ = m(src, tgt)
        cache = m.start(src)
        steps = [m.step_logits(tgt[:, t:t + 1], cache) for t in range(tgt.shape[1])]
    np.testing.assert_allclose(np.stack(steps, axis=1), full.data, atol=1e-10)


def test_cache_rows_can_be_repeated_and_reordered_for_beams() -> None:
    m = tiny()
    src = np.array([[3, 4, 5], [6, 7, 8]])
    with no_grad():
        cache = m.start(src, repeat=2)                      # rows: src0, src0, src1, src1
        m.step_logits(np.array([[1], [1], [1], [1]]), cache)
        cache.select(np.array([3, 2, 1, 0]))                 # rows now: src1, src1, src0, src0
        got = m.step_logits(np.array([[5], [5], [6], [6]]), cache)
        full, _ = m(np.array([[6, 7, 8], [3, 4, 5]]), np.array([[1, 5], [1, 6]]))
    np.testing.assert_allclose(got[[0, 2]], full.data[:, -1], atol=1e-10)


def test_label_smoothing_and_ignored_padding_in_the_loss() -> None:
    m = tiny(label_smoothing=0.1)
    src, tgt = np.array([[3, 4]]), np.array([[1, 5, 6]])
    targets = np.array([[5, 6, -100]])
    logits, loss = m(src, tgt, targets)
    z = logits.data[0, :2]
    logp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    expected = np.mean(-(0.9 * logp[[0, 1], [5, 6]] + 0.1 * logp.mean(-1)))
    assert float(loss.data) == pytest.approx(expected, rel=1e-9)


def test_tied_and_shared_weights_are_one_matrix() -> None:
    m = tiny(share_embeddings=True, tie_weights=True)
    assert m.lm_head.weight is m.tgt_embed.weight is m.src_embed.weight
    untied = tiny(tie_weights=False)
    assert untied.lm_head.weight is not untied.tgt_embed.weight
    assert untied.num_parameters() > m.num_parameters()


@pytest.mark.parametrize("bad, message", [
    (dict(positions="rotary"), "positions"), (dict(share_embeddings=True, src_vocab_size=5), "one vocabulary"),
    (dict(eos_id=0), "different"), (dict(label_smoothing=1.0), "label_smoothing"), (dict(bos_id=11), "bos_id"),
])
def test_bad_configs_are_refused_with_the_field_named(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny(**bad)


def test_sequences_longer_than_block_size_are_refused() -> None:
    with pytest.raises(ValueError, match="block_size"):
        tiny()(np.ones((1, 11), dtype=int) * 3, np.array([[1]]))


def test_the_registry_record() -> None:
    kind = registry.get("seq2seq")
    assert kind.objective == "seq2seq" and kind.can_generate and kind.model_class is Seq2Seq
    model = kind.build(dict(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    assert Seq2SeqConfig.from_dict(model.config.to_dict()) == model.config
