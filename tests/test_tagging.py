"""TokenClassifier: the linear and CRF heads over GPT and BERT backbones (gradient checks in
float64, learning a toy task, prediction per word), and word-to-piece label alignment."""
import numpy as np
import pytest

import tinyllm
from tinyllm import backend
from tinyllm.models import BERT, GPT, BertConfig, GPTConfig
from tinyllm.models.tagging import IGNORE, TokenClassifier, align_labels, gather_words
from tinyllm.nn import functional_call
from tinyllm.optim import configure_adamw


def perturb(model, std=0.3, seed=0):
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += backend.asarray(rng.normal(0, std, p.shape).astype(p.dtype))
    return model


def bert(**kw):
    return BERT(BertConfig(**{**dict(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=4, dropout=0.0), **kw}))


def test_align_labels_first_piece_only():
    assert align_labels([None, 0, 1, 1, 2, None], [3, 4, 5]) == [IGNORE, 3, 4, IGNORE, 5, IGNORE]
    assert align_labels([0, 0, 0], [7]) == [7, IGNORE, IGNORE]
    with pytest.raises(ValueError, match="out of range"):
        align_labels([0, 1], [1])


def test_gather_words_packs_starts_to_the_left():
    x = tinyllm.tensor(np.arange(2 * 4 * 1, dtype=np.float64).reshape(2, 4, 1))
    starts = np.array([[0, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)
    words, mask = gather_words(x, starts)
    assert mask.tolist() == [[True, True], [True, False]]
    assert words.data[:, :, 0][mask].tolist() == [1, 3, 4]                # padding rows: any finite value


@pytest.mark.parametrize("crf", [False, True])
@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_token_classifier_gradcheck(kind, crf):
    tinyllm.set_default_dtype("float64")
    backbone = bert() if kind == "bert" else GPT(GPTConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2,
                                                           n_embd=4))
    model = perturb(TokenClassifier(perturb(backbone), 3, crf=crf), seed=1)
    idx = np.array([[1, 2, 3, 4, 5], [2, 3, 4, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    labels = np.array([[-100, 1, -100, 2, 0], [-100, 2, 1, -100, -100]])
    names, params = zip(*model.named_parameters())
    assert ("crf.transitions" in names) == crf
    assert tinyllm.gradcheck(lambda *ws: functional_call(model, dict(zip(names, ws)), idx, labels, mask)[1],
                             *params)


@pytest.mark.parametrize("crf", [False, True])
def test_token_classifier_learns_a_toy_tagging_task(crf):
    """Tag 1 after token 3, else tag 0: needs context, which the backbone gives."""
    tinyllm.manual_seed(0)
    rng = np.random.default_rng(0)
    idx = rng.integers(1, 9, (32, 6))
    labels = np.zeros_like(idx)
    labels[:, 1:] = idx[:, :-1] == 3
    labels[:, 0] = IGNORE if not crf else 0
    model = TokenClassifier(bert(n_embd=16, n_head=2, n_layer=1), 2, crf=crf, dropout=0.0)
    opt = configure_adamw(model, 3e-3, 0.0)
    for _ in range(150):
        _, loss = model(idx, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    starts = np.ones_like(idx, dtype=bool)
    pred = np.array(model.predict(idx, starts))
    assert (pred[:, 1:] == labels[:, 1:]).mean() > 0.95


def test_predict_one_tag_per_word_start_and_empty_rows():
    model = TokenClassifier(bert(), 3, crf=True, tags=["O", "B-X", "I-X"], scheme="BIO")
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    starts = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    pred = model.predict(idx, starts)
    assert len(pred[0]) == 2 and pred[1] == [] and pred[0][0] != 2     # I-X cannot start a sequence
    lin = TokenClassifier(bert(), 3)
    assert [len(p) for p in lin.predict(idx, starts)] == [2, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_tags"):
        TokenClassifier(bert(), 1)
    model = TokenClassifier(bert(), 3, crf=True)
    with pytest.raises(ValueError, match="labels must have shape"):
        model(np.array([[1, 2]]), np.array([[1]]))
    with pytest.raises(ValueError, match="at least one labelled token"):
        model(np.array([[1, 2]]), np.array([[-100, -100]]))


# ----------------------------------------------------------------------------- data files and metrics

from tinyllm.data import DataError  # noqa: E402
from tinyllm.data.tagging import load_tagged, tag_names  # noqa: E402
from tinyllm.train.tasks.metrics import entities, entity_scores  # noqa: E402


def test_load_conll_and_jsonl(tmp_path):
    p = tmp_path / "a.conll"
    p.write_text("-DOCSTART- -X- O\n\nFirst NNP B-PER\nCitizen NNP I-PER\nspeaks VBZ O\n\n\nAll B-PER\n")
    assert load_tagged(p) == [(["First", "Citizen", "speaks"], ["B-PER", "I-PER", "O"]), (["All"], ["B-PER"])]
    j = tmp_path / "a.jsonl"
    j.write_text('{"tokens": ["All", "speak"], "tags": ["B-PER", "O"]}\n\n{"tokens": ["x"], "tags": ["O"]}\n')
    sents = load_tagged(j)
    assert len(sents) == 2 and tag_names(sents) == ["O", "B-PER"]


@pytest.mark.parametrize("name, text, match", [
    ("a.conll", "First B-PER\nlonely\n", r"a.conll:2: expected 'token tag'"),
    ("a.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n', r"a.jsonl:2: 2 tokens but 1"),
    ("a.jsonl", "{nope\n", r"a.jsonl:1: not valid JSON"),
    ("a.jsonl", '{"tokens": "a b", "tags": ["O"]}\n', r"a.jsonl:1: .* lists of non-empty strings"),
    ("a.conll", "\n\n", "is empty"),
])
def test_bad_tag_files_name_file_and_line(tmp_path, name, text, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        load_tagged(p)
    assert p.read_text() == text


def test_entities_follow_conlleval():
    assert entities(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]) == \
        [("PER", 0, 1), ("LOC", 3, 4), ("LOC", 5, 5), ("PER", 6, 6)]
    assert entities(["S-X", "B-X", "E-X", "O", "E-Y"]) == [("X", 0, 0), ("X", 1, 2), ("Y", 4, 4)]
    s = entity_scores([["B-PER", "I-PER", "O", "B-LOC"], ["B-PER"]], [["B-PER", "I-PER", "O", "B-PER"], ["O"]])
    assert (s.correct, s.true, s.predicted) == (1, 3, 2) and abs(s.f1 - 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)) < 1e-12
    assert s.per_type["LOC"] == (0.0, 0.0, 0.0, 1)


def test_entity_scores_match_seqeval_if_installed():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = np.random.default_rng(0)
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    true = [[names[i] for i in rng.integers(0, 5, rng.integers(1, 8))] for _ in range(40)]
    pred = [[names[i] if rng.random() < 0.7 else names[rng.integers(0, 5)] for i in map(names.index, t)]
            for t in true]
    s = entity_scores(true, pred)
    assert abs(s.f1 - seqeval.f1_score(true, pred)) < 1e-12
    assert abs(s.precision - seqeval.precision_score(true, pred)) < 1e-12


def test_tag_example_runs_quick(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(root / "examples" / "tag_shakespeare.py"), "--quick", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dictionary of training names" in done.stdout and "BERT from scratch + CRF" in done.stdout
    assert (tmp_path / "quick" / "test.conll").is_file()
