"""The encoder-decoder Transformer ("Attention Is All You Need", Vaswani et al. 2017).

A source x_1..x_S is read by an encoder stack; a target y_1..y_T is produced
by a decoder stack that attends, causally, over the target so far and, in a
cross-attention sub-layer of every block, over the encoder's output m:

    e_0    = sqrt(C) E_src[x_s] + P[s]               token embedding (scaled) + position
    m      = Enc_L(... Enc_1(e_0))                    (B, S, C): self-attention, no causal mask
    d_0    = sqrt(C) E_tgt[y_t] + P[t]
    h      = Dec_L(... Dec_1(d_0, m), m)             (B, T, C): causal self-attn, cross-attn over m, MLP
    logits = h W_out^T                               W_out = E_tgt when tied
    loss   = mean_t CE_smoothed(logits_t, y_{t+1})   teacher forcing, padding ignored

Training feeds the decoder ``tgt_in = [BOS] y_1 .. y_n`` and scores it against
``targets = y_1 .. y_n [EOS]`` (the same sequence shifted by one), padding
positions of the targets marked -100. Pre-LN stacks (``norm_first``) end in a
final LayerNorm each; post-LN ones (the paper's) do not need one.

For decoding (:mod:`tinyllm.decoding.beam`) :meth:`Seq2Seq.start` encodes the
sources once and projects each decoder block's cross-attention keys and
values of the memory once (:class:`~tinyllm.nn.MemoryKV`); each step then
feeds the newest target token only, with the decoder's self-attention keys
and values kept in a :class:`~tinyllm.nn.KVCacheStack`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .. import backend
from .. import functional as F
from ..nn import (Dropout, Embedding, KVCache, LayerNorm, LearnedPositionalEmbedding, Linear, Module, ModuleList,
                  SinusoidalPositionalEncoding, TransformerBlock, init)
from ..nn.attention import KVCacheStack, MemoryKV
from ..tensor import Tensor
from .common import padding_mask, token_ids
from .config import _Config, _flag, _positive_int, _probability, _transformer_shape


@dataclass
class Seq2SeqConfig(_Config):
    """Shapes of an encoder-decoder Transformer.

    Args:
        vocab_size: target vocabulary (V).
        block_size: longest target, in tokens (BOS/EOS included): the decoder's positions.
        n_layer: blocks in each stack (encoder and decoder).
        n_head, n_embd: heads and width (C), as in :class:`GPTConfig`.
        src_vocab_size: source vocabulary (0: the same as ``vocab_size``).
        src_block_size: longest source, the encoder's positions (0: the same as ``block_size``).
        dropout: on embeddings, attention weights and residual branches.
        bias: biases in Linear and LayerNorm layers.
        tie_weights: the output projection reuses the target embedding matrix.
        share_embeddings: source and target share one embedding table (needs one vocabulary).
        norm_first: pre-LN (True) or post-LN (False, the paper's).
        positions: "sinusoidal" (the paper's) or "learned".
        activation: "relu" (the paper's) or "gelu" in the feed-forward layers.
        pad_id, bos_id, eos_id: the special tokens (the same ids on both sides).
        label_smoothing: eps of the training loss (Szegedy et al. 2016; 0.1 in the paper).
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    src_vocab_size: int = 0
    src_block_size: int = 0
    dropout: float = 0.1
    bias: bool = True
    tie_weights: bool = True
    share_embeddings: bool = False
    norm_first: bool = True
    positions: str = "sinusoidal"
    activation: str = "relu"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    label_smoothing: float = 0.0

    @property
    def source_vocab(self) -> int:
        return self.src_vocab_size or self.vocab_size

    @property
    def source_length(self) -> int:
        return self.src_block_size or self.block_size

    def validate(self) -> None:
        """Raise ValueError naming the first field with a bad value."""
        _transformer_shape(self)
        if self.src_vocab_size:
            _positive_int("src_vocab_size", self.src_vocab_size)
        if self.src_block_size:
            _positive_int("src_block_size", self.src_block_size)
        _flag("share_embeddings", self.share_embeddings)
        _flag("norm_first", self.norm_first)
        if self.share_embeddings and self.source_vocab != self.vocab_size:
            raise ValueError(f"share_embeddings needs one vocabulary; source has {self.source_vocab} tokens, "
                             f"target {self.vocab_size}")
        if self.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {self.positions!r}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")
        for name in ("pad_id", "bos_id", "eos_id"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) \
                    or not 0 <= v < min(self.vocab_size, self.source_vocab):
                raise ValueError(f"{name} must be a token id of both vocabularies, got {v!r}")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError("pad_id, bos_id and eos_id must be three different tokens")
        _probability("label_smoothing", self.label_smoothing)


def _gather_filled(buf: Any, rows: Any, pos: int) -> Any:
    """``buf[rows]`` for a (B, nh, Tmax, hs) cache buffer, copying only the ``pos`` positions in use."""
    out = backend.get_array_module(buf).empty((len(rows),) + buf.shape[1:], dtype=buf.dtype)
    out[:, :, :pos] = buf[rows, :, :pos]
    return out


class Seq2SeqCache:
    """What decoding keeps per target sequence (row): the decoder's self-attention keys and values
    (one :class:`KVCache` per block), each block's cross-attention keys and values of the memory
    (:class:`MemoryKV`, computed once), and the memory's padding mask (B, S)."""

    def __init__(self, self_attn: KVCacheStack, memory: list[MemoryKV], memory_mask: Any) -> None:
        self.self_attn, self.memory, self.memory_mask = self_attn, memory, memory_mask

    @property
    def pos(self) -> int:
        return self.self_attn.pos

    def select(self, rows: Any) -> None:
        """Keep rows ``rows`` (an index array over the B rows, repeats allowed): beam search's reordering."""
        for c in self.self_attn.layers:                                    # (B, nh, Tmax, hs): the filled part
            c.k, c.v = (_gather_filled(buf, rows, c.pos) for buf in (c.k, c.v))
        for m in self.memory:
            m.k, m.v = m.k[rows], m.v[rows]                                # (B, nh, S, hs)
        self.memory_mask = self.memory_mask[rows]                          # (B, S)


class Seq2Seq(Module):
    """Encoder-decoder Transformer. Call it as ``model(src, tgt_in, targets, src_mask) -> (logits, loss)``.

    Args:
        config: a :class:`Seq2SeqConfig`.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"Seq2Seq needs a Seq2SeqConfig, got {type(config).__name__}")
        config.validate()
        c = self.config = config
        self.src_embed = Embedding(c.source_vocab, c.n_embd, padding_idx=c.pad_id)
        self.tgt_embed = Embedding(c.vocab_size, c.n_embd, padding_idx=c.pad_id)
        for emb in (self.src_embed, self.tgt_embed):       # N(0, 1/C): times sqrt(C) gives unit-variance inputs
            init.normal_(emb.weight, std=c.n_embd ** -0.5)
            emb.weight.data[c.pad_id] = 0
        if c.share_embeddings:
            self.tgt_embed.weight = self.src_embed.weight
        if c.positions == "sinusoidal":
            self.src_pos = SinusoidalPositionalEncoding(c.source_length, c.n_embd)
            self.tgt_pos = SinusoidalPositionalEncoding(c.block_size, c.n_embd)
        else:
            self.src_pos = LearnedPositionalEmbedding(c.source_length, c.n_embd)
            self.tgt_pos = LearnedPositionalEmbedding(c.block_size, c.n_embd)
            for pos in (self.src_pos, self.tgt_pos):
                init.normal_(pos.weight, std=0.02)
        self.drop = Dropout(c.dropout)
        block = dict(dropout=c.dropout, bias=c.bias, norm_first=c.norm_first, activation=c.activation, eps=1e-5)
        self.encoder = ModuleList(TransformerBlock(c.n_embd, c.n_head, causal=False, **block)
                                  for _ in range(c.n_layer))
        self.decoder = ModuleList(TransformerBlock(c.n_embd, c.n_head, causal=True, cross_attention=True, **block)
                                  for _ in range(c.n_layer))
        if c.norm_first:
            self.enc_ln = LayerNorm(c.n_embd, bias=c.bias)
            self.dec_ln = LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.tgt_embed.weight                    # (V, C): embedding in, scores out

    # ------------------------------------------------------------------ the two stacks
    def _embed(self, emb: Embedding, pos: Module, idx: Any, offset: int = 0) -> Tensor:
        t, side = idx.shape[1], "source" if pos is self.src_pos else "target"
        limit = self.config.source_length if side == "source" else self.config.block_size
        if offset + t > limit:
            raise ValueError(f"{side} length {offset + t} exceeds "
                             f"{'src_block_size' if side == 'source' else 'block_size'} {limit}")
        x = emb(idx) * math.sqrt(self.config.n_embd)                       # (B, T) -> (B, T, C)
        return self.drop(x + pos(t, offset))                               # (B, T, C) + (T, C) -> (B, T, C)

    def source_mask(self, src: Any, src_mask: Any = None) -> Any:
        """(B, S) True for real source tokens: ``src_mask`` if given, else ``src != pad_id``."""
        ids = token_ids(src, "src")
        if src_mask is None:
            return ids != self.config.pad_id
        return padding_mask(src_mask, ids.shape, "src_mask")

    def encode(self, src: Any, src_mask: Any = None) -> Tensor:
        """The memory: (B, S) source ids -> (B, S, C). ``src_mask`` (B, S): True for real tokens."""
        ids = token_ids(src, "src")
        mask = self.source_mask(ids, src_mask)                             # (B, S) bool
        x = self._embed(self.src_embed, self.src_pos, ids)                 # (B, S, C)
        for blk in self.encoder:
            x = blk(x, mask)                                               # (B, S, C) -> (B, S, C)
        return self.enc_ln(x) if self.config.norm_first else x            # (B, S, C)

    def decode(self, tgt_in: Any, memory: Tensor | None, memory_mask: Any = None, tgt_mask: Any = None,
               cache: Seq2SeqCache | None = None) -> Tensor:
        """Decoder states (B, T, C) of ``tgt_in`` (B, T) given the memory (B, S, C).

        Args:
            memory_mask: (B, S) True for real source positions.
            tgt_mask: (B, T) True for real target tokens (causal attention already keeps
                right padding from being seen by real tokens; padded targets carry no loss).
            cache: a :class:`Seq2SeqCache` (decoding): ``tgt_in`` continues the cached positions
                and ``memory`` may be None (its keys and values are in the cache).
        """
        ids = token_ids(tgt_in, "tgt_in")
        offset = cache.pos if cache is not None else 0
        tmask = None if tgt_mask is None else padding_mask(tgt_mask, ids.shape, "tgt_mask")
        mmask = cache.memory_mask if cache is not None else memory_mask
        x = self._embed(self.tgt_embed, self.tgt_pos, ids, offset)        # (B, T, C)
        for i, blk in enumerate(self.decoder):
            x = blk(x, tmask, None if cache is None else cache.self_attn[i], memory, mmask,
                    None if cache is None else cache.memory[i])            # (B, T, C) -> (B, T, C)
        return self.dec_ln(x) if self.config.norm_first else x            # (B, T, C)

    def forward(self, src: Any, tgt_in: Any, targets: Any = None, src_mask: Any = None,
                tgt_mask: Any = None) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced scores (B, T, V) of every next target token, and the loss when ``targets`` are given.

        Args:
            src: (B, S) source ids (padding: ``pad_id``, or marked False in ``src_mask``).
            tgt_in: (B, T) decoder inputs, BOS first.
            targets: (B, T) the tokens to predict (``tgt_in`` shifted left, EOS last), -100 at padding.
        """
        mask = self.source_mask(src, src_mask)                             # (B, S)
        memory = self.encode(src, mask)                                    # (B, S, C)
        h = self.decode(tgt_in, memory, mask, tgt_mask)                    # (B, T, C)
        logits = self.lm_head(h)                                           # (B, T, C) -> (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=self.config.label_smoothing)
        return logits, loss

    # ------------------------------------------------------------------ decoding (tinyllm.decoding.beam)
    def start(self, src: Any, src_mask: Any = None, repeat: int = 1) -> Seq2SeqCache:
        """Encode the sources once and make an empty decoding cache; each source gets ``repeat`` rows
        (its beams), rows of one source adjacent. Inference only (run under ``no_grad``)."""
        ids = token_ids(src, "src")
        mask = self.source_mask(ids, src_mask)                             # (B, S)
        memory = self.encode(ids, mask)                                    # (B, S, C)
        xp = backend.get_array_module(memory.data)
        rows = xp.repeat(xp.arange(ids.shape[0]), repeat)                  # (B * K,) source of each row
        kvs = []
        for blk in self.decoder:
            k, v = blk.crossattention.memory_kv(memory)                   # 2 x (B, nh, S, hs), once per source
            kv = MemoryKV()
            kv.k, kv.v = k.data[rows], v.data[rows]                        # (B * K, nh, S, hs)
            kvs.append(kv)
        c, w = self.config, self.tgt_embed.weight.data
        stack = KVCacheStack(KVCache(len(rows), c.n_head, c.block_size, c.n_embd // c.n_head, w.dtype, xp)
                             for _ in range(c.n_layer))
        return Seq2SeqCache(stack, kvs, mask[rows])

    def step_logits(self, tgt_new: Any, cache: Seq2SeqCache) -> Any:
        """Scores (B, V) of the token after ``tgt_new`` (B, T), the newest target tokens of each row."""
        h = self.decode(tgt_new, None, cache=cache)                       # (B, T, C)
        return self.lm_head(h[:, -1:, :]).data[:, -1, :]                   # (B, 1, C) -> (B, 1, V) -> (B, V)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per target token, about 6 N (N parameters besides embeddings) plus attention."""
        c = self.config
        t = c.block_size if seq_len is None else int(seq_len)
        n = self.num_parameters() - self.src_embed.weight.size \
            - (0 if c.share_embeddings else self.tgt_embed.weight.size)
        return 6 * n + 12 * 3 * c.n_layer * c.n_embd * t              # self-attn (enc, dec) and cross-attn

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_layer={c.n_layer}+{c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, "
                f"vocab={c.source_vocab}->{c.vocab_size}, length={c.source_length}->{c.block_size}, "
                f"{'pre' if c.norm_first else 'post'}-LN, {c.positions}")
