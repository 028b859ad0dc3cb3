"""The encoder-decoder against PyTorch: the same small model built from ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` (``norm_first`` for pre-LN), tinyllm's weights copied in, float64. The
twin is ``bench/seq2seq.py``'s, so the benchmark times the model checked here.

Logits agree to 1e-10 and every parameter's gradient of the label-smoothed loss to 1e-9 (relative),
with source padding (key padding in the encoder and in cross-attention) and target padding (ignored
targets, and key padding in the decoder's causal self-attention).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinyllm import backend
from tinyllm.models import Seq2Seq, Seq2SeqConfig

from test_seq2seq import _float64  # noqa: F401  (autouse: every test here runs in float64)

torch = pytest.importorskip("torch")
_spec = importlib.util.spec_from_file_location("bench_seq2seq", Path(__file__).parents[1] / "bench" / "seq2seq.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

C, H, L = 16, 2, 2


def batch():
    """Two pairs: the second source and target right-padded."""
    src = np.array([[3, 4, 5, 6, 7], [8, 3, 5, 0, 0]])
    tgt_in = np.array([[1, 4, 6, 3], [1, 7, 0, 0]])
    targets = np.array([[4, 6, 3, 2], [7, 2, -100, -100]])
    return src, src != 0, tgt_in, tgt_in != 0, targets


@pytest.mark.parametrize("options", [
    dict(norm_first=True, positions="sinusoidal", tie_weights=True, src_vocab_size=13),
    dict(norm_first=False, positions="learned", tie_weights=False, share_embeddings=True),
    dict(norm_first=False, positions="sinusoidal", tie_weights=True, src_vocab_size=12, src_block_size=5),
], ids=["pre-LN", "post-LN-shared-learned", "post-LN-tied"])
def test_logits_and_every_gradient_match_pytorch(options) -> None:
    backend.manual_seed(3)
    cfg = Seq2SeqConfig(vocab_size=11, block_size=6, n_layer=L, n_head=H, n_embd=C, dropout=0.0,
                        label_smoothing=0.1, **options)
    m = Seq2Seq(cfg)
    rng = np.random.default_rng(0)
    for _, p in m.named_parameters():                 # away from the init: LayerNorm gains, biases non-trivial
        p.data[...] = p.data + rng.normal(0, 0.05, p.data.shape)
    ref = bench.torch_twin(cfg.to_dict(), {k: np.asarray(v) for k, v in m.state_dict().items()}, torch.float64)
    src, src_mask, tgt_in, tgt_mask, targets = batch()

    logits, loss = m(src, tgt_in, targets, src_mask=src_mask, tgt_mask=tgt_mask)
    loss.backward()
    t_logits, t_loss = ref(*(torch.as_tensor(a) for a in (src, src_mask, tgt_in, tgt_mask, targets)))
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=0, atol=1e-10)
    assert loss.item() == pytest.approx(t_loss.item(), abs=1e-12)
    covered = {p for _, parts in ref.mapping.values() for p in parts}
    params = dict(m.named_parameters())
    assert covered == set(params)                                          # every parameter compared
    for name, (param, parts) in ref.mapping.items():
        ours = np.concatenate([params[p].grad for p in parts])
        theirs = param.grad.numpy()
        # relative to the largest entry; the keys' bias moves every score of a query alike, so softmax
        # gives it a gradient of 0 up to rounding: there the error is measured against 1e-6
        scale = max(np.abs(theirs).max(), 1e-6)
        assert np.abs(ours - theirs).max() / scale <= 1e-9, (name, np.abs(ours - theirs).max(), scale)
