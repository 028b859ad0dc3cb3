"""Two offline fine-tuning tasks built from the Shakespeare excerpt that ships with tinyllm,
shared by ``tag_shakespeare.py`` and ``qa_shakespeare.py``.

The excerpt is a play script: a speaker header on its own line ("MENENIUS:",
"First Citizen:", "LADY ANNE:"), then the speech. The headers give the
cast list, which labels two tasks without any annotation by hand:

* tagging: every speech line, word by word, with BIO tags for the character
  names that occur inside it ("... to Caius/O Marcius/B-PER ...", "Lady/B-PER Anne/I-PER");
* question answering: a context of a few consecutive speeches, the question
  "who says <one line of them>?", the answer the speaker's name in the context.

Also: pre-training the backbone with ``tinyllm train`` (a subprocess, as a
user would run it) and a small fine-tuning loop over any tinyllm model.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinyllm
from tinyllm import backend
from tinyllm.optim import configure_adamw

CORPUS = Path(tinyllm.__file__).parent / "data" / "corpora" / "shakespeare_excerpt.txt"
HEADER = re.compile(r"^([A-Z][A-Za-z ]*):$")
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|[^\sA-Za-z]")
GENERIC = {"All", "Both", "Boy", "Citizens", "Senators", "Lords", "Messenger", "Roman", "Servant", "Volsce",
           "Officer", "Page", "Lord", "Lady", "Queen", "King", "Prince", "Duke", "Duchess", "Of", "Keeper",
           "Sheriff", "Gentleman", "Herald", "Watch", "Scrivener", "Priest", "Pursuivant", "Mayor", "Nobleman"}


def speeches(text: str | None = None) -> list[tuple[str, list[str]]]:
    """(speaker, lines) of every speech, in order."""
    text = CORPUS.read_text(encoding="utf-8") if text is None else text
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = HEADER.match(line.strip())
        if m:
            out.append((m.group(1), []))
        elif line.strip() and out:
            out[-1][1].append(line.strip())
    return [s for s in out if s[1]]


def cast(all_speeches: list[tuple[str, list[str]]]) -> list[tuple[str, ...]]:
    """Character names as word tuples, longest first: the upper-case headers in title case ("LADY ANNE" ->
    ("Lady", "Anne")), their single proper names ("Anne", "Edward"), and the mixed-case headers with two or
    more words ("First Citizen")."""
    names: set[tuple[str, ...]] = set()
    for speaker, _ in all_speeches:
        words = tuple(w.capitalize() if speaker.isupper() else w for w in speaker.split())
        if speaker.isupper() or len(words) > 1:
            names.add(words)
        if speaker.isupper():
            names |= {(w,) for w in words if w not in GENERIC and len(w) > 2 and not re.fullmatch(r"[IVX]+", w)}
    return sorted(names, key=lambda n: (-len(n), n))


def bio(words: list[str], names: list[tuple[str, ...]]) -> list[str]:
    """BIO tags of the names in ``words``, longest match first."""
    tags = ["O"] * len(words)
    i = 0
    while i < len(words):
        for name in names:
            if tuple(words[i:i + len(name)]) == name:
                tags[i:i + len(name)] = ["B-PER"] + ["I-PER"] * (len(name) - 1)
                i += len(name)
                break
        else:
            i += 1
    return tags


def tagging_sentences(max_chars: int, rng: np.random.Generator) -> tuple[list, list]:
    """(train, test) tagged speech lines: every line naming a character and as many lines naming none;
    the last fifth of the excerpt is the test set (a later part of the play, and a second play)."""
    all_speeches = speeches()
    names = cast(all_speeches)
    lines = [line for _, ls in all_speeches for line in ls if len(line) <= max_chars]
    tagged = [(w, bio(w, names)) for w in (WORD.findall(line) for line in lines) if w]
    cut = int(0.8 * len(tagged))
    out = []
    for part in (tagged[:cut], tagged[cut:]):
        named = [s for s in part if any(t != "O" for t in s[1])]
        plain = [s for s in part if all(t == "O" for t in s[1])]
        pick = rng.choice(len(plain), size=min(len(named), len(plain)), replace=False)
        rows = named + [plain[i] for i in pick]
        out.append([rows[i] for i in rng.permutation(len(rows))])
    return out[0], out[1]


def qa_examples(max_chars: int, rng: np.random.Generator, speeches_per_context: int = 3) -> tuple[list, list]:
    """(train, test) QA rows: a context of consecutive speeches (header + first line each), the question
    "who says <a line>?", the answer the speaker's header in the context. Last fifth: test."""
    all_speeches = [(s, ls[0]) for s, ls in speeches() if len(ls[0]) <= max_chars]
    rows = []
    for start in range(0, len(all_speeches) - speeches_per_context, speeches_per_context):
        group = all_speeches[start:start + speeches_per_context]
        context, where = "", []
        for speaker, line in group:
            where.append((speaker, len(context)))
            context += f"{speaker}:\n{line}\n"
        k = int(rng.integers(len(group)))
        speaker, offset = where[k]
        rows.append({"context": context, "question": f"who says {group[k][1]}", "answer": speaker,
                     "answer_start": offset})
    cut = int(0.8 * len(rows))
    return rows[:cut], rows[cut:]


def pretrain(kind: str, out: Path, iters: int, quick: bool, corpus: str = "tiny", vocab_size: int = 1000) -> Path:
    """``tinyllm train --model KIND`` on ``corpus`` (a text file, or "tiny": the excerpt) with a byte-level
    BPE tokenizer of ``vocab_size`` trained on it, as a user runs it; the run directory.

    Two settings decide whether the pre-training is worth anything. The learning rate: the "tiny"
    preset's 5e-3 suits the pre-LN GPT, but the post-LN BERT trained with it stays at the unigram
    stage (masked-token accuracy 11%: it predicts frequent tokens whatever the context), and a
    backbone that ignores its input is a worse start than random weights; 1e-3 (cosine to 1e-4)
    gets it past that. And word-sized pieces: a character model spends a short pre-training on
    spelling, and its fine-tuning windows are four times longer for the same text."""
    if (out / "best").exists():
        print(f"pre-trained run {out} exists: reusing it")
        return out
    size = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2"] if quick else []
    cmd = [sys.executable, "-c", "from tinyllm.cli import main; main()", "train", "--model", kind, "--preset", "tiny",
           "--data", corpus, "--tokenizer", "bpe", "--vocab-size", str(vocab_size), "--iters", str(iters),
           "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", str(min(100, iters)),
           "--eval-interval", str(max(iters // 12, 1)), "--out", str(out), *size]
    print("$ tinyllm " + " ".join(cmd[3:]))
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pre-training failed:\n{done.stderr[-2000:]}")
    print(f"  {done.stdout.strip().splitlines()[-4]}  ({time.perf_counter() - start:.0f} s)")
    return out


def fit(model: Any, arrays: dict[str, np.ndarray], steps: int, batch_size: int, lr: float, seed: int) -> float:
    """``steps`` of AdamW on random mini-batches of ``arrays`` (keys: the model's forward arguments); seconds."""
    rng = np.random.default_rng(seed)
    opt = configure_adamw(model, lr, 0.01, betas=(0.9, 0.99))
    n = len(next(iter(arrays.values())))
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        rows = rng.choice(n, size=min(batch_size, n), replace=False)
        _, loss = model(**{k: backend.asarray(v[rows]) for k, v in arrays.items()})
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return time.perf_counter() - start
