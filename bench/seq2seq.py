"""A seq2seq training step: tinyllm's encoder-decoder against the same model in PyTorch, in fresh processes.

    python bench/seq2seq.py                          # "g2p": the G2P example's model, 3+3 x 128, batch 64
    python bench/seq2seq.py --config base --rounds 6 --steps 40

The tinyllm model is ``tinyllm.models.Seq2Seq`` (pre-LN, ReLU feed-forward of
4C, sinusoidal positions, output tied to the target embedding, no dropout);
its twin (:func:`torch_twin`) is built from ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` (``norm_first=True``) with the same
embeddings, positions and tied output, and loads the same initial weights
(a setup process writes them once; ``tests/test_seq2seq_torch.py`` checks in
float64 that the two give the same logits and gradients). A batch holds
``--batch`` random pairs whose sources and targets are right-padded to the
longest (lengths drawn between half and all of ``src_len``/``tgt_len``), so
both sides mask padding in the encoder, in cross-attention and in the
decoder. A step: forward, label-smoothed (0.1) cross-entropy over the real
target tokens, backward, clipping (1.0), AdamW. Throughput is in target
positions per second; the harness (``bench/harness.py``) alternates fresh
processes and reports medians, spreads and the ratio.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402
import harness  # noqa: E402
import steps  # noqa: E402

CONFIGS = {
    "tiny": dict(vocab=20, src_len=6, tgt_len=5, n_layer=1, n_head=2, n_embd=16, batch=4),       # tests
    "g2p": dict(vocab=48, src_len=24, tgt_len=24, n_layer=3, n_head=4, n_embd=128, batch=64),
    "base": dict(vocab=1000, src_len=32, tgt_len=32, n_layer=2, n_head=4, n_embd=128, batch=32),
}
LR, WD, BETAS, CLIP, SMOOTHING = 1e-3, 0.01, (0.9, 0.98), 1.0, 0.1
PAD, BOS, EOS = 0, 1, 2


def model_config(cfg: dict) -> dict:
    """The Seq2SeqConfig of a workload."""
    return dict(vocab_size=cfg["vocab"], block_size=cfg["tgt_len"] + 1, src_block_size=cfg["src_len"],
                n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=0.0,
                label_smoothing=SMOOTHING)


def pair_batches(cfg: dict, n: int, seed: int = 1) -> list:
    """``n`` (src, src_mask, tgt_in, tgt_mask, targets) of random right-padded pairs."""
    import numpy as np  # noqa: PLC0415
    rng = np.random.default_rng(seed)
    b, s, t = cfg["batch"], cfg["src_len"], cfg["tgt_len"]
    out = []
    for _ in range(n):
        src_n, tgt_n = rng.integers(s // 2, s + 1, b), rng.integers(t // 2, t + 1, b)
        src = np.where(np.arange(s) < src_n[:, None], rng.integers(3, cfg["vocab"], (b, s)), PAD)
        words = rng.integers(3, cfg["vocab"], (b, t))
        tgt_in = np.where(np.arange(t + 1) <= tgt_n[:, None], np.concatenate([np.full((b, 1), BOS), words], 1), PAD)
        targets = np.where(np.arange(t + 1) < tgt_n[:, None], np.concatenate([words, np.zeros((b, 1), int)], 1),
                           -100)
        targets[np.arange(b), tgt_n] = EOS
        out.append((src, src != PAD, tgt_in, tgt_in != PAD, targets))
    return out


def build_tinyllm(cfg: dict, state: dict | None = None, seed: int = 0):
    import tinyllm  # noqa: PLC0415
    from tinyllm.models import Seq2Seq, Seq2SeqConfig  # noqa: PLC0415
    tinyllm.manual_seed(seed)
    model = Seq2Seq(Seq2SeqConfig(**model_config(cfg)))
    if state is not None:
        model.load_state_dict(state)
    opt = common.tinyllm_adamw(model, LR, WD, BETAS)

    def step(src, src_mask, tgt_in, tgt_mask, targets):
        _, loss = model(src, tgt_in, targets, src_mask=src_mask, tgt_mask=tgt_mask)
        loss.backward()
        common.tinyllm_clip(opt, model, CLIP)
        opt.step()
        opt.zero_grad()
        return loss
    return model, step


def torch_twin(c: dict, state: dict, dtype: Any = None) -> Any:
    """The PyTorch twin of a tinyllm ``Seq2Seq`` of config ``c`` (a Seq2SeqConfig's dict), holding the
    weights ``state`` (a ``state_dict()``). ``twin.mapping[name] = (torch parameter, [tinyllm names])``:
    the tinyllm parameters stacked into each torch one (cross-attention's q and kv in one matrix)."""
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415
    dtype = dtype or torch.float32
    C, pad = c["n_embd"], c.get("pad_id", PAD)
    norm_first, positions = c.get("norm_first", True), c.get("positions", "sinusoidal")
    share, tie = c.get("share_embeddings", False), c.get("tie_weights", True)

    def tensor(name: str) -> Any:
        return torch.tensor(state[name], dtype=dtype)

    def sinusoids(n: int) -> Any:
        pos = torch.arange(n, dtype=dtype)[:, None]
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, C, 2, dtype=dtype) / C)
        pe = torch.zeros(n, C, dtype=dtype)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return pe

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = dict(d_model=C, nhead=c["n_head"], dim_feedforward=4 * C, dropout=0.0, activation="relu",
                         batch_first=True, norm_first=norm_first, dtype=dtype)
            self.encoder = nn.ModuleList(nn.TransformerEncoderLayer(**layer) for _ in range(c["n_layer"]))
            self.decoder = nn.ModuleList(nn.TransformerDecoderLayer(**layer) for _ in range(c["n_layer"]))
            self.src_embed = nn.Parameter(tensor("src_embed.weight"))
            self.tgt_embed = self.src_embed if share else nn.Parameter(tensor("tgt_embed.weight"))
            self.lm_head = self.tgt_embed if tie else nn.Parameter(tensor("lm_head.weight"))
            if positions == "learned":
                self.src_pos = nn.Parameter(tensor("src_pos.weight"))
                self.tgt_pos = nn.Parameter(tensor("tgt_pos.weight"))
            else:
                self.register_buffer("src_pos", sinusoids(c.get("src_block_size") or c["block_size"]))
                self.register_buffer("tgt_pos", sinusoids(c["block_size"]))
            if norm_first:
                self.enc_ln, self.dec_ln = nn.LayerNorm(C, dtype=dtype), nn.LayerNorm(C, dtype=dtype)
            self.mapping = self._mapping()
            with torch.no_grad():
                for param, parts in self.mapping.values():
                    param.copy_(torch.cat([tensor(p) for p in parts]))

        def _mapping(self) -> dict[str, tuple[Any, list[str]]]:
            out: dict[str, tuple[Any, list[str]]] = {}

            def both(mod: Any, ours: str, name: str) -> None:     # weight and bias of a Linear or LayerNorm
                out[f"{name}.weight"], out[f"{name}.bias"] = (mod.weight, [f"{ours}.weight"]), (mod.bias, [f"{ours}.bias"])

            for side, layers in (("encoder", self.encoder), ("decoder", self.decoder)):
                for i, lay in enumerate(layers):
                    p = f"{side}.{i}"
                    out[f"{p}.self_attn.in_proj_weight"] = (lay.self_attn.in_proj_weight, [f"{p}.attn.c_attn.weight"])
                    out[f"{p}.self_attn.in_proj_bias"] = (lay.self_attn.in_proj_bias, [f"{p}.attn.c_attn.bias"])
                    both(lay.self_attn.out_proj, f"{p}.attn.c_proj", f"{p}.self_attn.out_proj")
                    both(lay.linear1, f"{p}.mlp.c_fc", f"{p}.linear1")
                    both(lay.linear2, f"{p}.mlp.c_proj", f"{p}.linear2")
                    both(lay.norm1, f"{p}.ln_1", f"{p}.norm1")
                    if side == "encoder":
                        both(lay.norm2, f"{p}.ln_2", f"{p}.norm2")
                        continue
                    both(lay.norm2, f"{p}.ln_cross_attn", f"{p}.norm2")
                    both(lay.norm3, f"{p}.ln_2", f"{p}.norm3")
                    ca, mha = f"{p}.crossattention", lay.multihead_attn
                    out[f"{p}.multihead_attn.in_proj_weight"] = (mha.in_proj_weight,
                                                                 [f"{ca}.q_proj.weight", f"{ca}.kv_proj.weight"])
                    out[f"{p}.multihead_attn.in_proj_bias"] = (mha.in_proj_bias,
                                                               [f"{ca}.q_proj.bias", f"{ca}.kv_proj.bias"])
                    both(mha.out_proj, f"{ca}.c_proj", f"{p}.multihead_attn.out_proj")
            if norm_first:
                both(self.enc_ln, "enc_ln", "enc_ln")
                both(self.dec_ln, "dec_ln", "dec_ln")
            if positions == "learned":
                out["src_pos"], out["tgt_pos"] = (self.src_pos, ["src_pos.weight"]), (self.tgt_pos, ["tgt_pos.weight"])
            out["src_embed"] = (self.src_embed, ["src_embed.weight"])
            if not share:
                out["tgt_embed"] = (self.tgt_embed, ["tgt_embed.weight"])
            if not tie:
                out["lm_head"] = (self.lm_head, ["lm_head.weight"])
            return out

        def forward(self, src, src_mask, tgt_in, tgt_mask, targets):
            """(logits (B, T, V), the label-smoothed loss); masks True for real tokens."""
            x = nn.functional.embedding(src, self.src_embed, padding_idx=pad) * math.sqrt(C) \
                + self.src_pos[:src.shape[1]]
            for lay in self.encoder:
                x = lay(x, src_key_padding_mask=~src_mask)                             # (B, S, C)
            memory = self.enc_ln(x) if norm_first else x
            y = nn.functional.embedding(tgt_in, self.tgt_embed, padding_idx=pad) * math.sqrt(C) \
                + self.tgt_pos[:tgt_in.shape[1]]
            t = tgt_in.shape[1]
            causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).triu(1)   # True: not seen
            for lay in self.decoder:
                y = lay(y, memory, tgt_mask=causal, tgt_key_padding_mask=~tgt_mask,
                        memory_key_padding_mask=~src_mask, tgt_is_causal=True)         # (B, T, C)
            h = self.dec_ln(y) if norm_first else y
            logits = h @ self.lm_head.T                                                  # (B, T, V)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100,
                                               label_smoothing=c.get("label_smoothing", 0.0))
            return logits, loss

    return Twin()


def build_torch(cfg: dict, state: dict | None, device: str = "cpu"):
    import torch  # noqa: PLC0415
    if state is None:
        raise ValueError("the torch twin starts from the tinyllm model's weights (--weights)")
    model = torch_twin(model_config(cfg), state).to(device)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS)

    def step(src, src_mask, tgt_in, tgt_mask, targets):
        _, loss = model(src, src_mask, tgt_in, tgt_mask, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss
    return model, step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="g2p")
    harness.add_arguments(ap, warmup=3, steps=20, rounds=4)
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.config]
    if args.child:
        steps.child(args, lambda state: build_tinyllm(cfg, state), lambda state, device: build_torch(cfg, state, device),
                    lambda n: pair_batches(cfg, n), cfg["batch"] * (cfg["tgt_len"] + 1), info={"config": args.config})
        return {}
    summary, contenders = steps.compare(
        __file__, ["--config", args.config], args,
        title=f"seq2seq {args.config} ({cfg['n_layer']}+{cfg['n_layer']} x {cfg['n_embd']}, batch {cfg['batch']}, "
              f"source/target {cfg['src_len']}/{cfg['tgt_len']}): training target positions/s, {args.rounds} "
              f"round(s) of {args.warmup} + {args.steps} steps, fresh processes")
    out = {"summary": summary, "results": {c.name: c.results for c in contenders}}
    harness.write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
