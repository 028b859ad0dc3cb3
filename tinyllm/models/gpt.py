"""GPT-2: a decoder-only Transformer language model (Radford et al., 2019).

Given tokens x_1..x_T, the model scores every possible next token at every
position at once; causal attention keeps position t from seeing t+1..T:

    h_0    = W_te[x_t] + W_pe[t]                  token + learned position embeddings
    h_l    = Block_l(h_{l-1}),  l = 1..L          pre-LN: h + Attn(LN(h)), then h + MLP(LN(h))
    logits = LN_f(h_L) W_te^T                     the output layer reuses W_te (tied)
    loss   = mean_t -log softmax(logits_t)[x_{t+1}]

Parameter names are GPT-2's (``wte``, ``wpe``, ``h.0.attn.c_attn``, ``ln_f``,
``lm_head``), so Hugging Face checkpoints map onto them one to one
(``tinyllm.models.hf``). Generation reuses the keys and values of past
positions (a KV cache per layer) so each new token costs one position, not T.
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from .. import backend
from .. import functional as F
from ..generate import check_sampling_args, sample_next
from ..nn import (Dropout, Embedding, KVCache, LayerNorm, LearnedPositionalEmbedding, Linear, Module,
                  ModuleList, TransformerBlock, init)
from ..tensor import Tensor, no_grad
from .common import configure_adamw, padding_mask, token_ids
from .config import GPTConfig


class GPT(Module):
    """GPT-2-style language model.

    Args:
        config: a :class:`GPTConfig` (sizes, dropout, bias, weight tying).

    Attributes:
        config: the configuration it was built from.
        tokenizer: the tokenizer of a Hugging Face checkpoint loaded by
            :meth:`from_pretrained`, else None.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        config.validate()
        c = config
        self.config = c
        self.wte = Embedding(c.vocab_size, c.n_embd)
        self.wpe = LearnedPositionalEmbedding(c.block_size, c.n_embd)
        self.drop = Dropout(c.dropout)
        self.h = ModuleList(TransformerBlock(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias, causal=True,
                                             norm_first=True, eps=1e-5) for _ in range(c.n_layer))
        self.ln_f = LayerNorm(c.n_embd, eps=1e-5, bias=c.bias)
        self.lm_head = Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight        # one (V, C) matrix: embedding in, scores out
        init.gpt2_init_(self, c.n_layer)
        self.tokenizer: Any = None

    # ------------------------------------------------------------------ forward
    def forward(self, idx: Any, targets: Any = None) -> tuple[Tensor, Tensor | None]:
        """Next-token scores for every position, and the loss when ``targets`` are given.

        Args:
            idx: (B, T) integer token ids, T <= block_size.
            targets: (B, T) integer ids of the next tokens; -100 marks positions to ignore.

        Returns:
            logits (B, T, vocab_size) and the mean cross-entropy (a scalar Tensor) or None.
        """
        x = self._hidden(token_ids(idx))                                # (B, T) -> (B, T, C)
        logits = self.lm_head(x)                                        # (B, T, C) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)
        return logits, loss

    def encode(self, idx: Any, attention_mask: Any = None) -> Tensor:
        """Final hidden states (after ``ln_f``), (B, T) -> (B, T, C).

        ``attention_mask`` (B, T), True/1 for real tokens, hides padding keys;
        with right padding (the usual case) causal attention already keeps each
        real token from seeing the padding after it.
        """
        ids = token_ids(idx)
        mask = None if attention_mask is None else padding_mask(attention_mask, ids.shape)
        return self._hidden(ids, mask)

    def _hidden(self, idx: Any, mask: Any = None, caches: list[KVCache] | None = None) -> Tensor:
        """Embeddings, the blocks and ``ln_f``; with ``caches``, positions continue after the cached ones."""
        b, t = idx.shape
        offset = caches[0].pos if caches else 0
        if offset + t > self.config.block_size:
            raise ValueError(f"sequence length {offset + t} exceeds block_size {self.config.block_size}")
        tok = self.wte(idx)                                             # (B, T) -> (B, T, C)
        pos = self.wpe(t, offset)                                       # (T, C), positions offset..offset+T-1
        x = self.drop(tok + pos)                                        # (B, T, C) + (T, C) -> (B, T, C)
        for i, block in enumerate(self.h):
            x = block(x, mask, None if caches is None else caches[i])   # (B, T, C) -> (B, T, C)
        return self.ln_f(x)                                             # (B, T, C)

    # ------------------------------------------------------------------ generation
    def generate(self, idx: Any, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, greedy: bool = False, seed: int | None = None,
                 stop_token: int | None = None, use_cache: bool = True) -> np.ndarray:
        """Extend each prompt by up to ``max_new_tokens`` tokens; see :meth:`generate_stream`.

        Returns:
            (B, T + n) int64 NumPy array: the prompts followed by the n new tokens
            (n < max_new_tokens only when every sequence produced ``stop_token``).
        """
        prompt = backend.to_numpy(token_ids(idx))                       # (B, T)
        new = list(self.generate_stream(prompt, max_new_tokens, temperature, top_k, top_p, greedy, seed,
                                        stop_token, use_cache))
        if not new:
            return prompt.copy()
        cols = np.asarray(new, dtype=np.int64).reshape(len(new), -1).T  # (n, B) -> (B, n)
        return np.concatenate([prompt, cols], axis=1)                   # (B, T + n)

    def generate_stream(self, idx: Any, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                        top_p: float | None = None, greedy: bool = False, seed: int | None = None,
                        stop_token: int | None = None, use_cache: bool = True) -> Iterator[Any]:
        """Yield new tokens one at a time as they are made: an int when B == 1, else a (B,) array.

        Args:
            idx: (B, T) prompt token ids. Prompts longer than block_size are cropped to their end.
            max_new_tokens: how many tokens to add (>= 0).
            temperature, top_k, top_p, greedy: how to choose each token (``tinyllm.generate.sample_next``).
            seed: seed a private generator (the same tokens every time); None uses the global seeded one.
            stop_token: stop once every sequence has produced it (it is included); a sequence that
                stopped early keeps producing it while the others go on.
            use_cache: reuse past keys and values (same tokens as without, much faster).

        Runs without recording gradients, in eval mode (dropout off); the model's
        previous mode is restored before each token is yielded. Arguments are
        checked at the call, before the first token.
        """
        check_sampling_args(temperature, top_k, top_p, greedy)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) \
                or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        v = self.config.vocab_size
        if stop_token is not None and (isinstance(stop_token, bool) or not isinstance(stop_token, numbers.Integral)
                                       or not 0 <= stop_token < v):
            raise ValueError(f"stop_token must be a token id in [0, {v}), got {stop_token!r}")
        tokens = backend.to_numpy(token_ids(idx))                       # (B, T), kept on the host
        if tokens.min() < 0 or tokens.max() >= v:
            raise ValueError(f"prompt token ids must be in [0, {v}), got min {tokens.min()}, max {tokens.max()}")
        rng = np.random.default_rng(seed) if seed is not None else backend.rng(np)
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
        return self._decode(tokens, int(max_new_tokens), sampling, rng, stop_token, use_cache)

    def _decode(self, tokens: np.ndarray, max_new_tokens: int, sampling: dict, rng: np.random.Generator,
                stop_token: int | None, use_cache: bool) -> Iterator[Any]:
        b = tokens.shape[0]
        caches = self._new_caches(b) if use_cache else None
        done = np.zeros(b, dtype=bool)
        for _ in range(max_new_tokens):
            with self._inference():
                logits = self._next_logits(tokens, caches)              # (B, V)
            nxt = sample_next(logits, rng=rng, **sampling)              # (B,)
            if stop_token is not None:
                nxt = np.where(done, stop_token, nxt)                   # finished rows repeat the stop token
                done |= nxt == stop_token
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)     # (B, T) -> (B, T + 1)
            yield int(nxt[0]) if b == 1 else nxt
            if stop_token is not None and done.all():
                return

    def _next_logits(self, tokens: np.ndarray, caches: list[KVCache] | None) -> Any:
        """Scores of the token after ``tokens`` (B, T): (B, V), computed for the last position only.

        Without a cache the model reads the last block_size tokens. With one, it
        reads just the newest token at position ``cache.pos``; on the first step,
        or when the cache is full (the context slides past block_size and every
        learned position shifts), the caches restart from the last block_size
        tokens: the same window the uncached path reads, so the tokens match.
        """
        block = self.config.block_size
        if caches is None:
            x = self._hidden(backend.asarray(tokens[:, -block:]))                   # (B, T', C)
        elif caches[0].pos == 0 or caches[0].pos >= block:
            for cache in caches:
                cache.reset()
            x = self._hidden(backend.asarray(tokens[:, -block:]), caches=caches)    # prefill: (B, T', C)
        else:
            x = self._hidden(backend.asarray(tokens[:, -1:]), caches=caches)        # one token: (B, 1, C)
        return self.lm_head(x[:, -1:, :]).data[:, -1, :]               # (B, 1, C) -> (B, 1, V) -> (B, V)

    def _new_caches(self, batch: int) -> list[KVCache]:
        c, w = self.config, self.ln_f.weight.data              # the activations' dtype (wte may be int8)
        return [KVCache(batch, c.n_head, c.block_size, c.n_embd // c.n_head, w.dtype, backend.get_array_module(w))
                for _ in range(c.n_layer)]

    @contextmanager
    def _inference(self) -> Iterator[None]:
        """Eval mode and no_grad inside; every module's previous mode restored on exit."""
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            with no_grad():
                yield
        finally:
            for m, mode in modes:
                m.training = mode

    # ------------------------------------------------------------------ training helpers
    def configure_optimizer(self, lr: float, weight_decay: float, betas: tuple = (0.9, 0.95),
                            eps: float = 1e-8) -> Any:
        """AdamW with two groups: weights with ndim >= 2 decay, biases and LayerNorm gains do not."""
        return configure_adamw(self, lr, weight_decay, betas, eps)

    def num_parameters(self, non_embedding: bool = False, trainable_only: bool = False) -> int:
        """Number of weights (tied ones once). ``non_embedding`` leaves out the position
        embeddings, and the token embeddings too when they are not tied to the output
        layer (tied, they are the output layer's matmul weight), as nanoGPT counts."""
        n = super().num_parameters(trainable_only)
        if non_embedding:
            n -= self.wpe.weight.size
            if not self.config.tie_weights:
                n -= self.wte.weight.size
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, forward and backward (PaLM, appendix B):
        6 N + 12 L H Q T, with N non-embedding parameters, L layers, H heads of size Q
        and a context of T tokens (block_size unless ``seq_len`` is given)."""
        c = self.config
        t = c.block_size if seq_len is None else int(seq_len)
        return 6 * self.num_parameters(non_embedding=True) + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * t

    @classmethod
    def from_pretrained(cls, path: Any) -> "GPT":
        """Load a local Hugging Face GPT-2 directory (``config.json`` + ``model.safetensors``).

        The tokenizer in the directory, if any, is attached as ``model.tokenizer``.
        Nothing is downloaded. See :func:`tinyllm.models.hf.load_pretrained`.
        """
        from .hf import load_pretrained  # noqa: PLC0415  (hf builds a GPT: import on use)
        model, tokenizer = load_pretrained(path)
        model.tokenizer = tokenizer
        return model

    def extra_repr(self) -> str:
        c = self.config
        return f"n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, vocab_size={c.vocab_size}"
