"""Seq2seq runs with a tokenizer per side (char, symbols, BPE), separate source/target lengths, the
architecture options on the command line, and ``tinyllm info`` of such a run."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from test_seq2seq_train import run

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import DataError
from tinyllm.data.pairs import PairBPE, SymbolVocab, build_vocab, pair_vocabs_from_json, pair_vocabs_to_json
from tinyllm.models import Seq2Seq, Seq2SeqConfig
from tinyllm.train.config import resolve
from tinyllm.train.seq2seq import load_pair_data

SMALL = ["--model", "seq2seq", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "8",
         "--eval-interval", "2", "--eval-iters", "1", "--warmup", "1", "--iters", "2"]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    """Sentences of 2-4 words -> their words reversed in capitals (lengths vary: some pairs are long)."""
    r = random.Random(1)
    words = ["the cat", "a dog", "sat", "on", "mat", "ran", "far", "away", "here"]
    lines = []
    for _ in range(150):
        sent = " ".join(r.choice(words) for _ in range(r.randint(1, 4)))
        lines.append(f"{sent}\t{' '.join(reversed(sent.upper().split()))}\n")
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_bpe_sides_learn_from_the_training_pairs_and_round_trip() -> None:
    texts = ["the cat sat on the mat"] * 20 + ["a dog ran far away"] * 20
    bpe = build_vocab("bpe", texts, 270)
    assert isinstance(bpe, PairBPE) and bpe.vocab_size == 270
    assert (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2)
    ids = bpe.encode("the cat ran")
    assert len(ids) < len("the cat ran") and min(ids) >= 3        # merges learned; no special produced
    assert bpe.decode([1, *ids, 2, 0]) == "the cat ran"            # specials dropped in decoding
    assert bpe.decode(bpe.encode("zebra ünïcode")) == "zebra ünïcode"   # byte-level: nothing is unknown
    sym = SymbolVocab.from_texts(["HH AH0"], "symbols")
    src, tgt = pair_vocabs_from_json(pair_vocabs_to_json(bpe, sym))
    assert isinstance(src, PairBPE) and src.encode("the cat ran") == ids and tgt.symbols == sym.symbols
    with pytest.raises(DataError, match="at least 259"):
        build_vocab("bpe", texts, 100)
    bad = json.loads(pair_vocabs_to_json(bpe, sym))
    tok = bad["source"]["tokenizer"]
    tok["model"]["vocab"]["<s>"], tok["model"]["vocab"]["</s>"] = 2, 1      # BOS and EOS swapped
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] == "<pad>"]
    with pytest.raises(DataError, match="ids 0, 1, 2"):
        pair_vocabs_from_json(json.dumps(bad))


def test_each_side_has_its_tokenizer_and_its_length(pairs_file) -> None:
    cfg = resolve(dict(model="seq2seq", data=str(pairs_file), tokenizer="bpe", vocab_size=280, tgt_tokenizer="symbols",
                       block_size=64, src_block_size=12, tgt_block_size=4, n_layer=1, n_head=2, n_embd=16))
    data = load_pair_data(cfg)
    assert isinstance(data.src_vocab, PairBPE) and data.tgt_vocab.split == "symbols"
    src, tgt = data.train
    assert max(map(len, src)) <= 12 and max(map(len, tgt)) <= 3    # target + EOS fits 4
    kept = len(src) + len(data.val[0])
    assert 0 < kept < 150 and f"{150 - kept} longer than the source/target lengths 12/4 left out" in data.description


def test_separate_lengths_size_the_positions_and_bound_the_inputs() -> None:
    m = Seq2Seq(Seq2SeqConfig(vocab_size=9, block_size=4, src_block_size=7, n_layer=1, n_head=2, n_embd=8,
                              positions="learned", dropout=0.0))
    assert m.src_pos.weight.shape == (7, 8) and m.tgt_pos.weight.shape == (4, 8)
    m(np.full((1, 7), 3), np.full((1, 4), 4))                      # both at their limits
    with pytest.raises(ValueError, match="source length 8 exceeds src_block_size 7"):
        m(np.full((1, 8), 3), np.full((1, 2), 4))
    with pytest.raises(ValueError, match="target length 5 exceeds block_size 4"):
        m(np.full((1, 3), 3), np.full((1, 5), 4))
    with pytest.raises(ValueError, match="src_block_size"):
        Seq2SeqConfig(vocab_size=9, block_size=4, src_block_size=-1, n_layer=1, n_head=2, n_embd=8)


def test_a_run_with_every_option_trains_decodes_and_describes_itself(tmp_path, pairs_file) -> None:
    out = tmp_path / "run"
    code, text = run("train", *SMALL, "--data", pairs_file, "--tokenizer", "bpe", "--vocab-size", "290",
                     "--tgt-tokenizer", "symbols", "--block-size", "16", "--src-block-size", "10",
                     "--tgt-block-size", "5", "--norm", "post", "--positions", "learned", "--tie-weights", "no",
                     "--out", out)
    assert code == 0, text
    assert "longest source/target 10/5, post-LN, learned positions" in text and "left out" in text
    c = load_checkpoint(out).config["model"]["config"]
    assert (c["src_block_size"], c["block_size"], c["norm_first"], c["positions"], c["tie_weights"]) == \
        (10, 5, False, "learned", False)
    code, text = run("generate", "--ckpt", out, "--source", "the cat sat", "--beam", "2", "--max-new-tokens", "50")
    assert code == 0 and len(text.split()) <= 4, text               # bounded by the target length (5 - BOS)
    code, text = run("eval", "--ckpt", out, "--data", pairs_file)
    assert code == 0 and "symbol error rate" in text, text
    code, text = run("info", "--ckpt", out)
    assert code == 0, text
    for fact in ("encoder 1 blocks + decoder 1 blocks", "post-LN, learned positions, separate embeddings",
                 "source       bpe tokenizer, ", "longest 10 tokens", "target       symbols tokenizer",
                 "longest 5 tokens", "crossattention"):
        assert fact in text, (fact, text)
    facts = json.loads(run("info", "--ckpt", out, "--json")[1])
    v_src, v_tgt = facts["tokenizer"]["source"]["vocab_size"], facts["tokenizer"]["target"]["vocab_size"]
    assert facts["tokenizer"]["source"] == {"kind": "bpe", "vocab_size": v_src, "max_length": 10}
    assert 259 < v_src <= 290 and v_src == c["src_vocab_size"]
    assert facts["options"] == {"norm": "post", "positions": "learned", "share_embeddings": False,
                                "tie_weights": False}
    assert facts["parameters"] == facts["encoder_parameters"] + facts["decoder_parameters"] + \
        16 * (v_src + v_tgt + 10 + 5 + v_tgt)                        # embeddings, positions, untied output


def test_shared_embeddings_need_one_vocabulary(tmp_path) -> None:
    copy = tmp_path / "copy.tsv"
    copy.write_text("".join(f"{w}\t{w}\n" for w in ["abc", "cab", "bca", "aab", "ccb"] * 4), encoding="utf-8")
    out = tmp_path / "shared"
    code, text = run("train", *SMALL, "--data", copy, "--block-size", "6", "--share-embeddings", "yes", "--out", out)
    assert code == 0 and "shared embeddings" in text, text
    ck = load_checkpoint(out)
    assert ck.config["model"]["config"]["share_embeddings"] is True and "src_embed.weight" in ck.weights
    differ = tmp_path / "differ.tsv"
    differ.write_text("abc\tABC\ncab\tCAB\nbca\tBCA\n", encoding="utf-8")
    code, text = run("train", *SMALL, "--data", differ, "--share-embeddings", "yes", "--out", tmp_path / "x")
    assert code == 1 and "--share-embeddings needs one vocabulary" in text and "Traceback" not in text


@pytest.mark.parametrize("args, message", [
    (["--norm", "post"], "--norm is a seq2seq option"),
    (["--tgt-block-size", "8"], "--tgt-block-size is a seq2seq option"),
    (["--model", "seq2seq", "--norm", "middle"], "'middle' is not one of 'pre', 'post'"),
    (["--model", "seq2seq", "--src-block-size", "-3"], "src_block_size must be an integer >= 0"),
])
def test_bad_options_are_one_line(tmp_path, pairs_file, args, message) -> None:
    code, text = run("train", "--data", pairs_file, *args, "--out", tmp_path / "r")
    assert code != 0 and message in text and "Traceback" not in text, text


def test_options_in_a_config_file_and_a_resume_keeps_them(tmp_path, pairs_file) -> None:
    conf = tmp_path / "run.toml"
    conf.write_text('model = "seq2seq"\nnorm = "post"\ntgt-block-size = 6\nshare_embeddings = false\n',
                    encoding="utf-8")
    out = tmp_path / "run"
    code, text = run("train", "--config", conf, *SMALL[2:], "--data", pairs_file, "--block-size", "16",
                     "--out", out)
    assert code == 0 and "longest source/target 16/6, post-LN" in text, text
    code, text = run("train", "--out", out, "--resume", "--norm", "pre", "--iters", "3")
    assert code == 1 and "--norm pre differs from the run" in text, text
    conf.write_text('model = "seq2seq"\ntie-weights = "maybe"\n', encoding="utf-8")
    code, text = run("train", "--config", conf, "--data", pairs_file, "--out", tmp_path / "bad")
    assert code == 1 and "tie_weights" in text, text


@pytest.mark.parametrize("key, value, message", [
    ("norm_first", "yes", "norm_first must be true or false"), ("positions", "rotary", "positions must be"),
    ("src_block_size", 10 ** 9, "src_block_size"), ("tie_weights", 1, "tie_weights"),
])
def test_a_tampered_checkpoint_config_is_refused(tmp_path, pairs_file, key, value, message) -> None:
    from tinyllm.checkpoint import save_checkpoint
    from tinyllm.train.seq2seq_eval import restore_seq2seq
    out = tmp_path / "run"
    assert run("train", *SMALL, "--data", pairs_file, "--block-size", "16", "--out", out)[0] == 0
    ck = load_checkpoint(out)
    ck.config["model"]["config"][key] = value
    save_checkpoint(tmp_path / "bad", "latest", config=ck.config, weights=ck.weights,
                    tokenizer_json=ck.tokenizer_json, state=ck.state)
    with pytest.raises(Exception, match=message):
        restore_seq2seq(tmp_path / "bad")
    code, text = run("info", "--ckpt", tmp_path / "bad")
    assert code == 1 and message in text and "Traceback" not in text, text
