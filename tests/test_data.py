"""Slicing, padding, batching, token files, labeled data and MLM masking."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data import (IGNORE_INDEX, CharTokenizer, DataError, LMBatcher, TokenFile, blocks_to_xy, collate,
                          encode_pair, eval_batches, load_labeled, load_pairs, make_blocks, mask_tokens,
                          pad_batch, resolve_corpus, special_tokens_mask, split_train_val, token_dtype,
                          tokenize_file, train_val_split, write_token_file)

# ----------------------------------------------------------------------------- make_blocks / split


@given(st.integers(2, 300), st.integers(1, 20), st.integers(1, 25))
def test_make_blocks_windows(n, block_size, stride):
    ids = np.arange(n) * 7
    if n < block_size + 1:
        with pytest.raises(DataError, match=f"corpus has {n} tokens, fewer than one block of {block_size + 1}"):
            make_blocks(ids, block_size, stride)
        return
    blocks = make_blocks(ids, block_size, stride)
    assert blocks.dtype == np.int64 and blocks.shape == ((n - block_size - 1) // stride + 1, block_size + 1)
    for i in (0, len(blocks) - 1):
        assert np.array_equal(blocks[i], ids[i * stride: i * stride + block_size + 1])
    x, y = blocks_to_xy(blocks)
    assert np.array_equal(x[:, 1:], y[:, :-1]) and x.flags.c_contiguous


def test_make_blocks_default_stride_shares_one_token():
    blocks = make_blocks(list(range(9)), 4)
    assert blocks.tolist() == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8]]
    blocks[0, 0] = 99  # a copy, not a view of the input
    with pytest.raises(DataError, match="stride must be at least 1"):
        make_blocks(list(range(9)), 4, 0)
    with pytest.raises(DataError, match="integer token ids"):
        make_blocks(np.zeros((3, 3), dtype=np.int64), 2)


def test_split_train_val_is_a_cut():
    ids = np.arange(1000)
    train, val = split_train_val(ids, 0.1)
    assert np.array_equal(train, np.arange(900)) and np.array_equal(val, np.arange(900, 1000))
    with pytest.raises(DataError, match="val_fraction must be between 0 and 1"):
        split_train_val(ids, 1.0)
    train, val = split_train_val(np.arange(3), 0.1)
    assert train.tolist() == [0, 1] and val.tolist() == [2]
    with pytest.raises(DataError, match="cannot split 1 tokens"):
        split_train_val(np.arange(1), 0.5)


# ----------------------------------------------------------------------------- pad_batch / collate

@given(st.lists(st.lists(st.integers(1, 50), max_size=12), min_size=1, max_size=6),
       st.one_of(st.none(), st.integers(1, 15)), st.sampled_from(["right", "left"]),
       st.sampled_from(["right", "left"]))
def test_pad_batch_property(seqs, length, truncate, side):
    T = length if length is not None else max(len(s) for s in seqs)
    if T == 0:  # every sequence empty and no length given: nothing to pad to
        with pytest.raises(DataError, match="padded length must be at least 1"):
            pad_batch(seqs, length, pad_id=0)
        return
    ids, mask = pad_batch(seqs, length, pad_id=0, truncate=truncate, side=side)
    assert ids.shape == mask.shape == (len(seqs), T) and ids.dtype == np.int64 and mask.dtype == bool
    for row, m, s in zip(ids, mask, seqs):
        kept = s[:T] if truncate == "right" else s[max(len(s) - T, 0):]
        assert row[m].tolist() == kept  # real tokens, in order
        assert (row[~m] == 0).all() and m.sum() == len(kept)
        real = np.flatnonzero(m)
        if len(real):  # real tokens are contiguous, on the chosen side
            assert real[-1] - real[0] + 1 == len(real)
            assert (real[0] == 0) if side == "right" else (real[-1] == T - 1)


def test_pad_batch_examples_and_errors():
    ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, _ = pad_batch([[1, 2, 3, 4]], 2, pad_id=0, truncate="left")
    assert ids.tolist() == [[3, 4]]
    ids, mask = pad_batch([[1, 2], [3]], pad_id=9, side="left")
    assert ids.tolist() == [[1, 2], [9, 3]] and mask.tolist() == [[1, 1], [0, 1]]
    with pytest.raises(DataError, match="empty batch"):
        pad_batch([], pad_id=0)
    with pytest.raises(DataError, match="truncate must be"):
        pad_batch([[1]], pad_id=0, truncate="middle")
    with pytest.raises(DataError, match="padded length must be at least 1"):
        pad_batch([[]], pad_id=0)


def test_collate_pads_sequences_and_stacks_scalars():
    batch = collate([{"input_ids": [5, 6, 7], "labels": [6, 7, 8], "label": 1, "weight": 0.5},
                     {"input_ids": [5], "labels": [9], "label": 0, "weight": 1.0}], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[6, 7, 8], [9, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[True] * 3, [True, False, False]]
    assert batch["label"].tolist() == [1, 0] and batch["weight"].dtype == np.float32
    with pytest.raises(DataError, match="needs pad_id"):
        collate([{"input_ids": [1, 2]}, {"input_ids": [1]}])
    with pytest.raises(DataError, match="example 1 has keys"):
        collate([{"input_ids": [1]}, {"ids": [1]}], pad_id=0)


# ----------------------------------------------------------------------------- LMBatcher / eval_batches

def test_lm_batcher_shapes_targets_and_range():
    tokens = np.arange(1000, dtype=np.uint16)
    b = LMBatcher(tokens, block_size=16, batch_size=8, seed=3)
    for _ in range(20):
        x, y = b.next()
        assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
        assert np.array_equal(y, x + 1)  # consecutive windows of an arange: target = next token
        assert x.min() >= 0 and y.max() <= 999
    assert b.step == 20


def test_lm_batcher_reaches_both_ends_of_the_stream():
    b = LMBatcher(np.arange(10), block_size=4, batch_size=256, seed=0)
    x, y = b.next()
    assert x[:, 0].min() == 0 and y[:, -1].max() == 9  # starts 0..5 all drawn


def test_lm_batcher_is_seeded_and_resumes_exactly():
    tokens = np.random.default_rng(0).integers(0, 65, size=5000)
    a, b = LMBatcher(tokens, 32, 4, seed=7), LMBatcher(tokens, 32, 4, seed=7)
    for _ in range(5):
        assert all(np.array_equal(u, v) for u, v in zip(a.next(), b.next()))
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON checkpoint
    expected = [a.next() for _ in range(5)]
    resumed = LMBatcher(tokens, 32, 4, seed=123)  # the seed is overwritten by the state
    resumed.load_state_dict(state)
    assert resumed.step == 5
    for x, y in expected:
        rx, ry = resumed.next()
        assert np.array_equal(rx, x) and np.array_equal(ry, y)
    assert not np.array_equal(LMBatcher(tokens, 32, 4, seed=8).next()[0], LMBatcher(tokens, 32, 4, seed=7).next()[0])


def test_lm_batcher_refuses_mismatched_state_and_short_corpus():
    tokens = np.arange(500)
    state = LMBatcher(tokens, 32, 4).state_dict()
    with pytest.raises(DataError, match="block_size=32, but this run has block_size=64"):
        LMBatcher(tokens, 64, 4).load_state_dict(state)
    with pytest.raises(DataError, match="corpus has 40 tokens, fewer than one block of 65 \\(block_size \\+ 1\\)"):
        LMBatcher(np.arange(40), 64, 4)
    with pytest.raises(DataError, match="not text"):
        LMBatcher("some text", 2, 1)


def test_lm_batcher_gathers_with_one_index_per_batch():
    class CountingTokens(np.ndarray):
        reads = 0

        def __getitem__(self, key):
            CountingTokens.reads += 1
            return np.asarray(self)[key]

    tokens = np.arange(2000).view(CountingTokens)
    b = LMBatcher(tokens, 16, 64)
    b.next()
    b.next()
    assert CountingTokens.reads == 2


def test_eval_batches_are_deterministic_and_full_pass_covers_everything():
    tokens = np.arange(1003)
    first = list(eval_batches(tokens, 10, 8, n_batches=3, seed=1))
    again = list(eval_batches(tokens, 10, 8, n_batches=3, seed=1))
    assert len(first) == 3 and all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    full = list(eval_batches(tokens, 10, 8))
    xs = np.concatenate([x for x, _ in full])
    assert xs.shape == (100, 10) and np.array_equal(xs.ravel(), np.arange(1000))
    assert full[-1][0].shape == (4, 10)
    with pytest.raises(DataError, match="validation set has 5 tokens"):
        eval_batches(np.arange(5), 10, 8)


# ----------------------------------------------------------------------------- token files

def test_token_file_round_trip_and_dtype(tmp_path):
    ids = np.random.default_rng(0).integers(0, 300, size=10_000)
    tf = write_token_file(tmp_path / "t.bin", (ids[i:i + 999] for i in range(0, len(ids), 999)), 300)
    assert tf.dtype == np.uint16 and len(tf) == 10_000 and (tmp_path / "t.bin").stat().st_size == 20_000
    meta = json.loads((tmp_path / "t.bin.json").read_text())
    assert meta["count"] == 10_000 and meta["dtype"] == "uint16" and meta["vocab_size"] == 300
    assert np.array_equal(np.asarray(tf), ids) and tf[5] == ids[5] and tf[-1] == ids[-1]
    assert np.array_equal(tf[100:200], ids[100:200])
    idx = np.array([[0, 1], [9999, 3]])
    assert np.array_equal(tf[idx], ids[idx])
    assert token_dtype(65_536) == np.uint16 and token_dtype(65_537) == np.uint32
    big = write_token_file(tmp_path / "big.bin", np.array([70_000, 1]), 100_000)
    assert big.dtype == np.uint32 and big[0] == 70_000
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_token_file_views_split_and_feed_the_batcher(tmp_path):
    ids = np.arange(5000) % 1000
    tf = write_token_file(tmp_path / "t.bin", ids, 1000)
    train, val = split_train_val(tf, 0.1)
    assert isinstance(train, TokenFile) and len(train) == 4500 and len(val) == 500
    assert np.array_equal(val[:], ids[4500:]) and val[0] == ids[4500]
    from_file = LMBatcher(train, 16, 8, seed=5)
    from_array = LMBatcher(ids[:4500], 16, 8, seed=5)
    for _ in range(3):
        (x1, y1), (x2, y2) = from_file.next(), from_array.next()
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    with pytest.raises(IndexError):
        val[np.array([500])]


def test_token_file_reopens_its_memmap_per_read(tmp_path, monkeypatch):
    tf = write_token_file(tmp_path / "t.bin", np.arange(1000), 1000)
    opened = []
    real = np.memmap

    def spy(*args, **kwargs):
        opened.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", spy)
    b = LMBatcher(tf, 8, 4)
    for _ in range(3):
        b.next()
    assert len(opened) == 3  # one fresh map per batch, none kept open on the object
    assert not any(isinstance(v, real) for v in vars(tf).values())


def test_token_file_errors(tmp_path):
    with pytest.raises(DataError, match="token id 300 is outside the vocabulary \\(size 300\\)"):
        write_token_file(tmp_path / "t.bin", [[1, 2, 300]], 300)
    assert not (tmp_path / "t.bin").exists()
    with pytest.raises(DataError, match="no tokens to write"):
        write_token_file(tmp_path / "t.bin", [], 300)
    write_token_file(tmp_path / "t.bin", np.arange(10), 300)
    with open(tmp_path / "t.bin", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(DataError, match="has 21 bytes but its metadata says 10 tokens of uint16"):
        TokenFile(tmp_path / "t.bin")
    (tmp_path / "u.bin").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="has no metadata file"):
        TokenFile(tmp_path / "u.bin")
    with pytest.raises(DataError, match="does not exist"):
        TokenFile(tmp_path / "nope.bin")


def test_tokenize_file_streams_and_records_the_tokenizer(tmp_path):
    corpus = resolve_corpus("tiny")
    text = Path(corpus).read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    tf = tokenize_file(corpus, tmp_path / "tiny.bin", tok, chunk_chars=10_000)
    assert np.array_equal(tf[:], tok.encode(text)) and tok.decode(tf[:1000].tolist()) == text[:1000]
    assert tf.meta["tokenizer"] == {"kind": "char", "hash": tok.fingerprint()}
    tf.check_tokenizer(tok)
    with pytest.raises(DataError, match="was written by another tokenizer"):
        tf.check_tokenizer(CharTokenizer.from_text(text, special_tokens=("[PAD]",)))


# ----------------------------------------------------------------------------- labeled data

def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    return p


def test_load_labeled_csv_string_and_int_labels(tmp_path):
    p = _write(tmp_path, "l.csv", 'id,text,label\n1,"good, really",pos\n2,bad,neg\n3,"multi\nline",pos\n')
    texts, labels, names = load_labeled(p)
    assert texts == ["good, really", "bad", "multi\nline"] and names == ["neg", "pos"]
    assert labels.tolist() == [1, 0, 1] and labels.dtype == np.int64
    p = _write(tmp_path, "n.csv", "text,label\na,10\nb,9\nc,10\n")
    assert load_labeled(p)[1].tolist() == [1, 0, 1] and load_labeled(p)[2] == ["9", "10"]  # numeric order


def test_load_labeled_jsonl_and_tsv(tmp_path):
    p = _write(tmp_path, "l.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n')
    texts, labels, names = load_labeled(p)
    assert texts == ["a", "b"] and labels.tolist() == [1, 0] and names == ["0", "1"]
    p = _write(tmp_path, "l.tsv", "label\ttext\nx\thello, world\ny\tbye\n")
    assert load_labeled(p)[0] == ["hello, world", "bye"]


@pytest.mark.parametrize("name, content, message", [
    ("labels.csv", "text,label\na,x\nb,y\nc,x\nd,y\ne,x\nf\n", "labels.csv line 7: missing 'label' column"),
    ("labels.csv", "text,category\na,x\n", "labels.csv line 1: missing 'label' column (the header has: text, "
                                           "category)"),
    ("labels.csv", "text,label\na,x\n ,y\n", "labels.csv line 3: empty text"),
    ("labels.csv", "text,label\na,x\nb,\n", "labels.csv line 3: empty label"),
    ("labels.csv", "text,label\na,x\nb,x,extra\n", "labels.csv line 3: 3 fields, but the header has 2"),
    ("labels.csv", "text,label\na,x\nb,x\n", "labels.csv has only 1 class ('x'); a classifier needs at least 2"),
    ("labels.csv", "text,label\n", "has no examples"),
    ("labels.csv", "", "is empty"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b" "label": 0}\n', "d.jsonl line 2: invalid JSON"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', "d.jsonl line 2: missing 'label' key"),
    ("d.jsonl", '["a", 1]\n', "d.jsonl line 1: expected a JSON object"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n', "d.jsonl line 2: label 'x' mixes"),
    ("d.jsonl", '{"text": "a", "label": 1.5}\n', "d.jsonl line 1: 'label' must be a string or an integer"),
    ("d.jsonl", '{"text": 3, "label": 1}\n', "d.jsonl line 1: 'text' must be a string"),
    ("d.txt", "a\n", "unknown labeled-data format '.txt'"),
])
def test_load_labeled_errors(tmp_path, name, content, message):
    with pytest.raises(DataError) as info:
        load_labeled(_write(tmp_path, name, content))
    assert message in str(info.value)


def test_load_labeled_reports_non_utf8_and_missing(tmp_path):
    (tmp_path / "b.csv").write_bytes(b"text,label\n\xff,1\n")
    with pytest.raises(DataError, match="not UTF-8 text \\(byte 0xff at offset 11\\)"):
        load_labeled(tmp_path / "b.csv")
    with pytest.raises(DataError, match="does not exist"):
        load_labeled(tmp_path / "none.csv")


def test_load_pairs_and_encode_pair(tmp_path):
    p = _write(tmp_path, "p.jsonl", '{"prompt": "Q: hi", "response": "A: yo"}\n{"prompt": "", "response": "x"}\n')
    assert load_pairs(p) == [("Q: hi", "A: yo"), ("", "x")]
    for content, message in [('{"prompt": "a"}\n', "line 1: missing 'response' key"),
                             ('{"prompt": "a", "response": "  "}\n', "line 1: empty response"),
                             ('{"prompt": 1, "response": "b"}\n', "line 1: 'prompt' must be a string")]:
        with pytest.raises(DataError, match=message):
            load_pairs(_write(tmp_path, "bad.jsonl", content))
    tok = CharTokenizer.from_text("QA: hiyo", special_tokens=("<|endoftext|>",))
    ex = encode_pair(tok, "hi", "yo")
    seq = tok.encode("hiyo") + [tok.eos_id]
    assert ex["input_ids"].tolist() == seq[:-1]
    assert ex["labels"].tolist() == [IGNORE_INDEX] + seq[2:]  # only response tokens (and the end) are targets
    batch = collate([ex, encode_pair(tok, "h", "y")], pad_id=0)
    assert batch["labels"][1].tolist() == [tok.encode("y")[0], tok.eos_id, IGNORE_INDEX, IGNORE_INDEX]


def test_train_val_split_is_seeded_and_disjoint():
    tr, va = train_val_split(100, 0.2, seed=1)
    assert len(va) == 20 and len(tr) == 80 and set(tr) | set(va) == set(range(100)) and not set(tr) & set(va)
    assert np.array_equal(va, train_val_split(100, 0.2, seed=1)[1])
    assert not np.array_equal(va, train_val_split(100, 0.2, seed=2)[1])
    assert len(train_val_split(5, 0.01)[1]) == 1 and len(train_val_split(5, 0.0)[1]) == 0
    with pytest.raises(DataError, match="cannot hold out"):
        train_val_split(1, 0.5)


# ----------------------------------------------------------------------------- MLM masking

def test_mask_tokens_proportions_and_specials():
    rng = np.random.default_rng(0)
    V, MASK_ID, CLS_ID, SEP_ID, PAD_ID = 1000, 3, 1, 2, 0
    ids = rng.integers(10, V, size=(256, 400))
    ids[:, 0], ids[:, -1], ids[:128, 300:-1] = CLS_ID, SEP_ID, PAD_ID  # half the rows end in padding
    special = special_tokens_mask(ids, [PAD_ID, CLS_ID, SEP_ID, None])
    inputs, labels = mask_tokens(ids, mask_id=MASK_ID, vocab_size=V, special_mask=special,
                                 rng=np.random.default_rng(1))
    selected = labels != IGNORE_INDEX
    assert not (selected & special).any()  # never [CLS], [SEP] or [PAD]
    assert np.array_equal(labels[selected], ids[selected])
    assert np.array_equal(inputs[~selected], ids[~selected])  # unselected tokens untouched
    n = selected.sum()
    assert abs(n / (~special).sum() - 0.15) < 0.005
    masked = (inputs == MASK_ID) & selected
    kept = (inputs == ids) & selected
    assert abs(masked.sum() / n - 0.8) < 0.01
    # A random replacement equals the original 1 time in V; count "kept" both ways within tolerance.
    assert abs(kept.sum() / n - 0.1) < 0.01
    assert abs((n - masked.sum() - kept.sum()) / n - 0.1) < 0.01
    assert inputs.min() >= 0 and inputs.max() < V and inputs.dtype == labels.dtype == np.int64


def test_mask_tokens_is_reproducible_and_checks_input():
    ids = np.arange(200).reshape(4, 50) % 20 + 4
    special = np.zeros_like(ids, dtype=bool)
    a = mask_tokens(ids, mask_id=3, vocab_size=30, special_mask=special, rng=np.random.default_rng(5))
    b = mask_tokens(ids, mask_id=3, vocab_size=30, special_mask=special, rng=np.random.default_rng(5))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    with pytest.raises(DataError, match="special_mask has shape"):
        mask_tokens(ids, mask_id=3, vocab_size=30, special_mask=special[:2], rng=np.random.default_rng())
    with pytest.raises(DataError, match="mask_id 30 is outside"):
        mask_tokens(ids, mask_id=30, vocab_size=30, special_mask=special, rng=np.random.default_rng())
