"""Extractive QA: windows over long contexts (stride, offsets, answer labels), span decoding
against brute force over every span, and the SpanExtractor head (gradient check, loss)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm import backend
from tinyllm.data import CharTokenizer
from tinyllm.data.tokenizers import BERT_SPECIALS
from tinyllm.models import BERT, GPT, BertConfig, GPTConfig
from tinyllm.models.qa import IGNORE, SpanExtractor, Window, best_span, decode_answer, make_windows
from tinyllm.nn import functional_call

CONTEXT = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak."
TOK = CharTokenizer.from_text(CONTEXT + "Who says?", special_tokens=BERT_SPECIALS)


@pytest.mark.parametrize("max_length, stride", [(20, 3), (24, 0), (40, 10), (200, 5)])
def test_windows_cover_the_context_with_the_stride_and_map_back_to_characters(max_length, stride):
    q = "Who says speak?"
    windows = make_windows(TOK, q, CONTEXT, max_length, stride)
    spans = []
    for w in windows:
        assert len(w.ids) <= max_length and len(w.ids) == len(w.offsets) == len(w.segment_ids)
        assert w.ids[0] == TOK.cls_id and w.ids[-1] == TOK.sep_id
        ctx = [o for o in w.offsets if o is not None]
        assert [w.segment_ids[t] for t, o in enumerate(w.offsets) if o is not None] == [1] * len(ctx)
        spans.append((ctx[0][0], ctx[-1][1]))
        assert "".join(CONTEXT[a:b] for a, b in ctx) == CONTEXT[ctx[0][0]:ctx[-1][1]]
    assert spans[0][0] == 0 and spans[-1][1] == len(CONTEXT)
    for (_a0, b0), (a1, _b1) in zip(spans, spans[1:]):
        assert b0 - a1 == stride                                    # char tokenizer: one token per character
    assert len(windows) == 1 if max_length == 200 else len(windows) > 1


def test_answer_labels_only_in_windows_holding_the_whole_answer():
    a = CONTEXT.index("hear me speak")
    answer = (a, a + len("hear me speak"))
    windows = make_windows(TOK, "Who?", CONTEXT, 24, 8, answer=answer)
    labelled = [w for w in windows if w.start != IGNORE]
    assert labelled and any(w.start == IGNORE for w in windows)
    for w in labelled:
        assert CONTEXT[w.offsets[w.start][0]:w.offsets[w.end][1]] == "hear me speak"
    for w in windows:
        assert (w.start == IGNORE) == (w.end == IGNORE)


def test_window_errors():
    with pytest.raises(ValueError, match="stride"):
        make_windows(TOK, "Who?", CONTEXT, 20, 50)
    with pytest.raises(ValueError, match="no room"):
        make_windows(TOK, "Who says speak, all of you?", CONTEXT, 4, 0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.integers(1, 9), max_answer=st.integers(1, 5))
def test_best_span_matches_brute_force(seed, t, max_answer):
    rng = np.random.default_rng(seed)
    s, e = rng.normal(size=t), rng.normal(size=t)
    allowed = rng.random(t) < 0.7
    i, j, score = best_span(s, e, allowed, max_answer)
    cands = [(s[a] + e[b], a, b) for a in range(t) for b in range(a, min(t, a + max_answer)) if allowed[a] and allowed[b]]
    if not cands:
        assert (i, j) == (-1, -1)
    else:
        best = max(cands)
        assert (i, j) == (best[1], best[2]) and abs(score - best[0]) < 1e-12


def test_decode_answer_picks_the_best_window_and_maps_to_characters():
    windows = make_windows(TOK, "Who?", CONTEXT, 24, 8)
    a = CONTEXT.index("Speak, speak")
    logits = []
    for w in windows:
        s, e = np.zeros(len(w.ids) + 2), np.zeros(len(w.ids) + 2)      # padded past the window
        for t, o in enumerate(w.offsets):
            if o is not None and o[0] == a:
                s[t] = 5.0
            if o is not None and o[1] == a + len("Speak"):
                e[t] = 5.0
        s[0] = e[0] = 100.0                                           # [CLS] is never an answer
        logits.append((s, e))
    text, start, score = decode_answer(CONTEXT, windows, [x[0] for x in logits], [x[1] for x in logits], 10)
    assert (text, start, score) == ("Speak", a, 10.0)
    assert decode_answer(CONTEXT, [], [], [])[1] == -1


def test_gpt_style_windows_use_no_specials():
    tok = CharTokenizer.from_text(CONTEXT + "Who?")
    w = make_windows(tok, "Who?", CONTEXT, 30, 4, bert_style=False)[0]
    assert w.ids[:4] == tok.encode("Who?") and w.offsets[4] == (0, 1)


def perturb(model, std=0.3, seed=0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += backend.asarray(rng.normal(0, std, p.shape).astype(p.dtype))
    return model


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_span_extractor_gradcheck(kind):
    tinyllm.set_default_dtype("float64")
    shape = dict(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=4, dropout=0.0)
    backbone = BERT(BertConfig(**shape)) if kind == "bert" else GPT(GPTConfig(**shape))
    model = perturb(SpanExtractor(perturb(backbone)), seed=1)
    idx = np.array([[1, 2, 3, 4, 5], [2, 3, 4, 0, 0], [1, 1, 1, 1, 1]])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    starts, ends = np.array([1, 2, IGNORE]), np.array([3, 2, IGNORE])
    names, params = zip(*model.named_parameters())
    assert tinyllm.gradcheck(lambda *ws: functional_call(model, dict(zip(names, ws)), idx, starts, ends, mask)[1],
                             *params)


def test_span_extractor_loss_is_the_mean_of_the_two_cross_entropies():
    tinyllm.set_default_dtype("float64")
    model = perturb(SpanExtractor(BERT(BertConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=4))))
    model.eval()
    idx = np.array([[1, 2, 3, 4], [4, 3, 2, 1]])
    (s, e), loss = model(idx, [1, IGNORE], [2, IGNORE])
    ls = s.data[0] - np.log(np.exp(s.data[0]).sum())
    le = e.data[0] - np.log(np.exp(e.data[0]).sum())
    assert abs(float(loss.data) - (-(ls[1] + le[2]) / 2)) < 1e-12
    with pytest.raises(ValueError, match="token positions"):
        model(idx, [7, 0], [0, 0])
    assert isinstance(Window(0, [1], [0], [None]).start, int)


# ----------------------------------------------------------------------------- data files and metrics

import json  # noqa: E402

from tinyllm.data import DataError  # noqa: E402
from tinyllm.data.qa import load_qa  # noqa: E402
from tinyllm.train.tasks.metrics import exact_match, f1_score, normalize_answer  # noqa: E402


def test_load_squad_and_jsonl(tmp_path):
    squad = {"data": [{"paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "q1", "question": "Who speaks?", "answers": [{"text": "First Citizen", "answer_start": 0},
                                                            {"text": "Citizen", "answer_start": 6}]}]}]}]}
    (tmp_path / "s.json").write_text(json.dumps(squad))
    ex = load_qa(tmp_path / "s.json")
    assert ex[0].id == "q1" and ex[0].answers == [("First Citizen", 0), ("Citizen", 6)]
    row = {"context": CONTEXT, "question": "Who?", "answer": "All", "answer_start": CONTEXT.index("All")}
    (tmp_path / "r.jsonl").write_text(json.dumps(row) + "\n")
    assert load_qa(tmp_path / "r.jsonl")[0].answers == [("All", CONTEXT.index("All"))]


@pytest.mark.parametrize("name, content, match", [
    ("r.jsonl", json.dumps({"context": "abc", "question": "q", "answer": "b", "answer_start": 0}),
     r"r.jsonl:1: the context at answer_start 0 reads 'a', not the answer 'b'"),
    ("r.jsonl", json.dumps({"context": "abc", "question": "q", "answer": "b", "answer_start": 9}),
     r"r.jsonl:1: answer_start must be"),
    ("r.jsonl", json.dumps({"context": "abc", "answer": "b", "answer_start": 1}), r'r.jsonl:1: "question"'),
    ("s.json", '{"data": [}', r"s.json: not valid JSON \(Expecting value at line 1"),
    ("s.json", json.dumps({"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "x", "question": "q",
                                                                            "answers": []}]}]}]}),
     "question x has no"),
])
def test_bad_qa_files_are_one_clear_error(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_text(content + "\n")
    with pytest.raises(DataError, match=match):
        load_qa(p)


def test_squad_metrics():
    assert normalize_answer("The  First, Citizen!") == "first citizen"
    assert exact_match("the First Citizen.", ["first citizen", "all"]) == 1.0
    assert exact_match("Citizen", ["first citizen"]) == 0.0
    assert abs(f1_score("First Citizen speaks", ["a first citizen"]) - 0.8) < 1e-12
    assert f1_score("nobody", ["All"]) == 0.0


def test_qa_example_runs_quick(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(root / "examples" / "qa_shakespeare.py"), "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "speaker of the most similar line" in done.stdout and "BERT pre-trained + span head" in done.stdout
    assert (tmp_path / "quick" / "test.jsonl").is_file()
