"""Answer "who says <line>?" from a few of Shakespeare's speeches with a BERT span extractor.

Each context is three consecutive speeches of the excerpt that ships with tinyllm (the
speaker's header and the speech's first line each); the question quotes one of the lines;
the answer is that speaker's name, a span of the context. A context longer than the
model's window is read in overlapping windows (stride 8) and the best span over all of
them is the answer. Compared, by SQuAD exact match and F1 on the last fifth of the excerpt:

* baselines: the first speaker of the context; the speaker whose line shares the most
  words with the question (a lexical lookup);
* a BERT pre-trained with ``tinyllm train --model bert`` (shared with ``tag_shakespeare.py``),
  fine-tuned with a span-extraction head, and the same shape from scratch, same budget
  (steps, batch, learning rate, three seeds, averaged).

    python examples/qa_shakespeare.py --corpus tinyshakespeare.txt   # reuses tag_shakespeare.py's pre-training
    python examples/qa_shakespeare.py --quick                         # a few seconds: a smoke test

Measured (the pre-training of ``tag_shakespeare.py``; 120 steps of 32 windows, lr 1e-3, mean
of 3 seeds): 275 training questions (402 windows, 289 holding the answer), 69 test
questions; EM / F1: first speaker 39.1% / 42.8%, most similar line 100% / 100%, from
scratch 13.5% / 24.5%, pre-trained 10.6% / 18.8% (3000 iterations), 11.6% / 21.4% (6000),
8.2% / 18.7% (12000). Pre-training does not help here: the answer is found by matching the
question's words against the context's lines, a copying skill that masked-LM pre-training
of this size does not give and that 120 steps do not teach either model; the lexical
baseline is far ahead.

The rows are written as JSONL (context, question, answer, answer_start): the same run from
the command line is ``tinyllm finetune --ckpt <run> --data train.jsonl --task qa --stride 8``.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import time
from pathlib import Path

import numpy as np
from shakespeare_tasks import WORD, fit, pretrain, qa_examples

import tinyllm
from tinyllm.data.qa import load_qa
from tinyllm.models import BERT
from tinyllm.models.qa import SpanExtractor
from tinyllm.train.restore import restore_model
from tinyllm.train.tasks.metrics import exact_match, f1_score
from tinyllm.train.tasks.qa import evaluate, window_arrays, windows_of

STRIDE, MAX_ANSWER = 8, 20


def baselines(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """EM and F1 of the first speaker and of the speaker with the most words in common with the question."""
    out = {}
    for name in ("first speaker of the context", "speaker of the most similar line"):
        em = f1 = 0.0
        for r in rows:
            blocks = re.findall(r"^([A-Z][A-Za-z ]*):\n(.*)$", r["context"], re.M)
            if name.startswith("first"):
                guess = blocks[0][0]
            else:
                q = set(WORD.findall(r["question"].lower()))
                guess = max(blocks, key=lambda b: len(q & set(WORD.findall(b[1].lower()))))[0]
            em += exact_match(guess, [r["answer"]])
            f1 += f1_score(guess, [r["answer"]])
        out[name] = (em / len(rows), f1 / len(rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (smoke test)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples"), help="where runs and data files go")
    parser.add_argument("--corpus", default="tiny", help="pre-training text: a file, or tiny (the excerpt)")
    parser.add_argument("--pretrain-iters", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=120, help="fine-tuning steps (both models)")
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (both models)")
    parser.add_argument("--seed", type=int, default=0, help="data split and first fine-tuning seed")
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning runs per model, averaged")
    args = parser.parse_args()
    if args.quick:
        args.pretrain_iters, args.steps, args.out, args.seeds = 4, 3, args.out / "quick", 1
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    tinyllm.manual_seed(args.seed)
    start = time.perf_counter()

    run = pretrain("bert", args.out / "bert-bpe", args.pretrain_iters, args.quick, args.corpus)
    restored = restore_model(run)
    bert, tok = restored.model, restored.tokenizer
    train, test = qa_examples(max_chars=40, rng=rng)
    if args.quick:
        train, test = train[:12], test[:6]
    for name, rows in (("train", train), ("test", test)):
        (args.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    info = {"stride": STRIDE, "max_answer": MAX_ANSWER}
    windows = windows_of(load_qa(args.out / "train.jsonl"), tok, bert.config.block_size, "bert", STRIDE, True)
    kept = [w for w in windows if w.start >= 0]
    arrays = window_arrays(kept, tok, "bert")
    print(f"data: {len(train)} training questions ({len(windows)} windows, {len(kept)} holding the answer), "
          f"{len(test)} test questions (files {args.out / 'train.jsonl'}, {args.out / 'test.jsonl'})")

    results = [(k, [em], [f1], 0.0) for k, (em, f1) in baselines(test).items()]
    seeds = range(args.seed, args.seed + args.seeds)
    for label in ("BERT pre-trained + span head", "BERT from scratch + span head"):
        em, f1, seconds = [], [], 0.0
        for seed in seeds:                                             # the same seeds, so the same budget
            tinyllm.manual_seed(seed)
            backbone = copy.deepcopy(bert) if "pre-trained" in label else BERT(bert.config)
            model = SpanExtractor(backbone)
            seconds += fit(model, arrays, args.steps, 32, args.lr, seed) / len(seeds)
            report = evaluate(model, tok, "bert", info, str(args.out / "test.jsonl"))
            em.append(report.exact_match)
            f1.append(report.f1)
        results.append((label, em, f1, seconds))
    print(f"\nfine-tuning seeds {', '.join(map(str, seeds))} (mean, min - max)")
    print(f"{'reader':<36}{'EM':>8}{'(min - max)':>16}{'F1':>8}{'(min - max)':>16}{'train s':>9}")
    for label, em, f1, seconds in results:
        spread = [f"{min(v):.1%} - {max(v):.1%}" if len(v) > 1 else "" for v in (em, f1)]
        print(f"{label:<36}{np.mean(em):>8.1%}{spread[0]:>16}{np.mean(f1):>8.1%}{spread[1]:>16}"
              + (f"{seconds:>9.0f}" if seconds else ""))
    print(f"\n({args.steps} fine-tuning steps of 32 windows each at lr {args.lr:g}; pre-training "
          f"{args.pretrain_iters} iterations; {time.perf_counter() - start:.0f} s wall time in all)")


if __name__ == "__main__":
    main()
