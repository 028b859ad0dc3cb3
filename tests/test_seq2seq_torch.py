"""The encoder-decoder against PyTorch: the same small model built from ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` (``norm_first`` for pre-LN), tinyllm's weights copied in, float64.

Logits agree to 1e-10 and every parameter's gradient of the label-smoothed loss to 1e-9 (relative),
with source padding (key padding in the encoder and in cross-attention) and target padding (ignored
targets, and key padding in the decoder's causal self-attention).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinyllm import backend
from tinyllm.models import Seq2Seq, Seq2SeqConfig

torch = pytest.importorskip("torch")
nn = torch.nn

C, H, L = 16, 2, 2


@pytest.fixture(autouse=True)
def _float64():
    previous = backend.get_default_dtype()
    backend.set_default_dtype("float64")
    yield
    backend.set_default_dtype(previous)


def t64(a: np.ndarray) -> "torch.Tensor":
    return torch.tensor(np.asarray(a), dtype=torch.float64)


class TorchSeq2Seq(nn.Module):
    """The reference: torch's layers around tinyllm's embeddings, positions and (tied) output."""

    def __init__(self, m: Seq2Seq) -> None:
        super().__init__()
        c = m.config
        layer = dict(d_model=C, nhead=H, dim_feedforward=4 * C, dropout=0.0, activation="relu", batch_first=True,
                     norm_first=c.norm_first, dtype=torch.float64)
        self.cfg = c
        self.encoder = nn.ModuleList(nn.TransformerEncoderLayer(**layer) for _ in range(L))
        self.decoder = nn.ModuleList(nn.TransformerDecoderLayer(**layer) for _ in range(L))
        self.src_embed = nn.Parameter(t64(m.src_embed.weight.data))
        self.tgt_embed = self.src_embed if c.share_embeddings else nn.Parameter(t64(m.tgt_embed.weight.data))
        self.lm_head = self.tgt_embed if c.tie_weights else nn.Parameter(t64(m.lm_head.weight.data))
        if c.positions == "learned":
            self.src_pos, self.tgt_pos = nn.Parameter(t64(m.src_pos.weight.data)), nn.Parameter(t64(m.tgt_pos.weight.data))
        else:
            self.src_pos, self.tgt_pos = sinusoids(c.source_length), sinusoids(c.block_size)
        if c.norm_first:
            self.enc_ln = nn.LayerNorm(C, dtype=torch.float64)
            self.dec_ln = nn.LayerNorm(C, dtype=torch.float64)
        ours = dict(m.named_parameters())
        with torch.no_grad():
            for param, parts in self.mapping(m).values():
                param.copy_(torch.cat([t64(ours[p].data) for p in parts]))

    def mapping(self, m: Seq2Seq) -> dict[str, tuple["torch.Tensor", list[str]]]:
        """torch parameter -> the tinyllm parameters stacked into it (cross-attention's q and kv into one)."""
        out = {}

        def linear(torch_mod, ours: str, torch_name: str) -> None:
            out[f"{torch_name}.weight"] = (torch_mod.weight, [f"{ours}.weight"])
            out[f"{torch_name}.bias"] = (torch_mod.bias, [f"{ours}.bias"])

        for side, layers in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, lay in enumerate(layers):
                p = f"{side}.{i}"
                out[f"{p}.sa.w"] = (lay.self_attn.in_proj_weight, [f"{p}.attn.c_attn.weight"])
                out[f"{p}.sa.b"] = (lay.self_attn.in_proj_bias, [f"{p}.attn.c_attn.bias"])
                linear(lay.self_attn.out_proj, f"{p}.attn.c_proj", f"{p}.sa.out")
                linear(lay.linear1, f"{p}.mlp.c_fc", f"{p}.ff1")
                linear(lay.linear2, f"{p}.mlp.c_proj", f"{p}.ff2")
                linear(lay.norm1, f"{p}.ln_1", f"{p}.norm1")
                if side == "encoder":
                    linear(lay.norm2, f"{p}.ln_2", f"{p}.norm2")
                    continue
                linear(lay.norm2, f"{p}.ln_cross_attn", f"{p}.norm2")
                linear(lay.norm3, f"{p}.ln_2", f"{p}.norm3")
                ca = f"{p}.crossattention"
                out[f"{p}.ca.w"] = (lay.multihead_attn.in_proj_weight, [f"{ca}.q_proj.weight", f"{ca}.kv_proj.weight"])
                out[f"{p}.ca.b"] = (lay.multihead_attn.in_proj_bias, [f"{ca}.q_proj.bias", f"{ca}.kv_proj.bias"])
                linear(lay.multihead_attn.out_proj, f"{ca}.c_proj", f"{p}.ca.out")
        if self.cfg.norm_first:
            linear(self.enc_ln, "enc_ln", "enc_ln")
            linear(self.dec_ln, "dec_ln", "dec_ln")
        if self.cfg.positions == "learned":
            out["src_pos"], out["tgt_pos"] = (self.src_pos, ["src_pos.weight"]), (self.tgt_pos, ["tgt_pos.weight"])
        out["src_embed"] = (self.src_embed, ["src_embed.weight"])
        if not self.cfg.share_embeddings:
            out["tgt_embed"] = (self.tgt_embed, ["tgt_embed.weight"])
        if not self.cfg.tie_weights:
            out["lm_head"] = (self.lm_head, ["lm_head.weight"])
        return out

    def forward(self, src, src_mask, tgt_in, tgt_mask, targets, eps):
        pad = self.cfg.pad_id
        x = nn.functional.embedding(src, self.src_embed, padding_idx=pad) * math.sqrt(C) + self.src_pos[:src.shape[1]]
        for lay in self.encoder:
            x = lay(x, src_key_padding_mask=~src_mask)                              # (B, S, C)
        memory = self.enc_ln(x) if self.cfg.norm_first else x
        y = nn.functional.embedding(tgt_in, self.tgt_embed, padding_idx=pad) * math.sqrt(C) \
            + self.tgt_pos[:tgt_in.shape[1]]
        causal = torch.ones(tgt_in.shape[1], tgt_in.shape[1], dtype=torch.bool).triu(1)   # True: not seen
        for lay in self.decoder:
            y = lay(y, memory, tgt_mask=causal, tgt_key_padding_mask=~tgt_mask, memory_key_padding_mask=~src_mask,
                    tgt_is_causal=True)
        h = self.dec_ln(y) if self.cfg.norm_first else y
        logits = h @ self.lm_head.T                                                   # (B, T, V)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100,
                                           label_smoothing=eps)
        return logits, loss


def sinusoids(n: int) -> "torch.Tensor":
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, C, 2, dtype=torch.float64) / C)
    pe = torch.zeros(n, C, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


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
    ref = TorchSeq2Seq(m)
    src, src_mask, tgt_in, tgt_mask, targets = batch()

    logits, loss = m(src, tgt_in, targets, src_mask=src_mask, tgt_mask=tgt_mask)
    loss.backward()
    t_logits, t_loss = ref(*(torch.as_tensor(a) for a in (src, src_mask, tgt_in, tgt_mask, targets)), 0.1)
    t_loss.backward()

    np.testing.assert_allclose(logits.data, t_logits.detach().numpy(), rtol=0, atol=1e-10)
    assert loss.item() == pytest.approx(t_loss.item(), abs=1e-12)
    mapping = ref.mapping(m)
    covered = {p for _, parts in mapping.values() for p in parts}
    assert covered == {name for name, _ in m.named_parameters()}          # every parameter compared
    params = dict(m.named_parameters())
    for name, (param, parts) in mapping.items():
        ours = np.concatenate([params[p].grad for p in parts])
        theirs = param.grad.numpy()
        # relative to the largest entry; the keys' bias moves every score of a query alike, so softmax
        # gives it a gradient of 0 up to rounding: there the error is measured against the loss's scale
        scale = max(np.abs(theirs).max(), 1e-6)
        assert np.abs(ours - theirs).max() / scale <= 1e-9, (name, np.abs(ours - theirs).max(), scale)
