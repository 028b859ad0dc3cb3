"""Pre-train a small BERT with masked language modelling, then fine-tune it to classify sentiment.

1. Unlabeled text: short "reviews" generated from templates ("the plot was
   not dull.", "honestly, the cast felt superb!"), tokenized by a byte-level
   BPE trained on them. BERT learns to fill in hidden words (MLM: 15% of the
   tokens, 80% [MASK] / 10% random / 10% kept).
2. A small labeled set (positive / negative; "not" flips the sentiment):
   a fresh linear head on the [CLS] vector, trained together with the encoder.
   The same fine-tuning from a randomly initialized encoder shows what the
   pre-training bought.

    python examples/bert_finetune.py            # about a minute on 2 CPU cores
    python examples/bert_finetune.py --quick    # a few seconds: a smoke test
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tinyllm
from tinyllm.data import BERT_SPECIALS, BPETokenizer, mask_tokens, pad_batch, special_tokens_mask
from tinyllm.models import BERT, BertConfig, SequenceClassifier
from tinyllm.optim import configure_adamw

SUBJECTS = ["the movie", "this film", "the acting", "the plot", "the soundtrack", "the ending", "the story",
            "the cast", "this show", "the script", "the dialogue", "the camera work"]
POSITIVE = ["wonderful", "brilliant", "great", "delightful", "superb", "moving", "excellent", "charming",
            "beautiful", "clever"]
NEGATIVE = ["terrible", "boring", "awful", "dull", "horrible", "weak", "painful", "disappointing", "clumsy",
            "bland"]
TEMPLATES = ["{s} was {n}{a}.", "i thought {s} was {n}{a}.", "{s} is {n}{a}!", "honestly, {s} felt {n}{a}.",
             "in my opinion {s} was {n}{a}.", "{s}? {n}{a}, really."]


def review(rng: np.random.Generator) -> tuple[str, int]:
    """A templated sentence and its label (1 positive, 0 negative); "not" flips the adjective's polarity."""
    positive = rng.random() < 0.5
    negated = rng.random() < 0.3
    adjective = rng.choice(POSITIVE if positive else NEGATIVE)
    text = rng.choice(TEMPLATES).format(s=rng.choice(SUBJECTS), a=adjective, n="not " if negated else "")
    return text, int(positive != negated)


def encode(tok: BPETokenizer, texts: list[str], length: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] text [SEP], padded on the right: ids and attention mask, (N, length)."""
    seqs = [[tok.cls_id] + tok.encode(t)[: length - 2] + [tok.sep_id] for t in texts]
    return pad_batch(seqs, length, pad_id=tok.pad_id)


def pretrain(model: BERT, ids: np.ndarray, mask: np.ndarray, tok: BPETokenizer, steps: int, batch: int,
             rng: np.random.Generator) -> None:
    special = special_tokens_mask(ids, [tok.pad_id, tok.cls_id, tok.sep_id])
    opt = configure_adamw(model, lr=2e-3, weight_decay=0.01)
    t0 = time.perf_counter()
    for it in range(steps):
        rows = rng.integers(0, len(ids), size=batch)
        inputs, labels = mask_tokens(ids[rows], tok.mask_id, tok.vocab_size, special[rows], rng)
        _, loss = model(inputs, labels, attention_mask=mask[rows])
        opt.zero_grad()
        loss.backward()
        opt.clip_grad_norm_(1.0)
        opt.step()
        if (it + 1) % max(steps // 5, 1) == 0:
            print(f"  MLM step {it + 1:4d}/{steps}  loss {loss.item():.3f}  ({time.perf_counter() - t0:.0f}s)")


def fill_in(model: BERT, tok: BPETokenizer, before: str, after: str, length: int) -> list[str]:
    """The model's five best guesses for the word between ``before`` and ``after``."""
    seq = [tok.cls_id] + tok.encode(before) + [tok.mask_id] + tok.encode(after) + [tok.sep_id]
    ids, mask = pad_batch([seq], length, pad_id=tok.pad_id)
    model.eval()
    with tinyllm.no_grad():
        logits, _ = model(ids, attention_mask=mask)                 # (1, T, V)
    model.train()
    best = np.argsort(-logits.numpy()[0, len(tok.encode(before)) + 1])[:5]
    return [tok.decode([int(i)]).strip() for i in best]


def finetune(backbone: BERT, data: dict, steps: int, batch: int, rng: np.random.Generator) -> float:
    """Train a [CLS] classifier on the labeled training set; return accuracy on the test set."""
    clf = SequenceClassifier(backbone, num_classes=2, pooling="cls")
    opt = configure_adamw(clf, lr=1e-3, weight_decay=0.01)
    x, m, y = data["train"]
    for _ in range(steps):
        rows = rng.integers(0, len(x), size=batch)
        _, loss = clf(x[rows], labels=y[rows], attention_mask=m[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    x, m, y = data["test"]
    with tinyllm.no_grad():
        logits, _ = clf(x, attention_mask=m)
    return float((logits.numpy().argmax(axis=1) == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tinyllm.manual_seed(args.seed)
    mlm_steps, ft_steps, length = (10, 10, 16) if args.quick else (400, 150, 16)

    unlabeled = [review(rng)[0] for _ in range(3000)]
    labeled = [review(rng) for _ in range(600)]
    tok = BPETokenizer.train(unlabeled, vocab_size=400, special_tokens=BERT_SPECIALS)
    print(f"BPE vocabulary: {tok.vocab_size} tokens; e.g. {tok.encode('the plot was not dull.')} "
          f"= 'the plot was not dull.'")
    ids, mask = encode(tok, unlabeled, length)
    x, m = encode(tok, [t for t, _ in labeled], length)
    y = np.array([label for _, label in labeled])
    data = {"train": (x[:200], m[:200], y[:200]), "test": (x[200:], m[200:], y[200:])}

    size = dict(n_layer=1, n_head=2, n_embd=32) if args.quick else dict(n_layer=2, n_head=4, n_embd=64)
    config = BertConfig(vocab_size=tok.vocab_size, block_size=length, pad_id=tok.pad_id, dropout=0.1, **size)
    probe = ("the ending was", ".")
    bert = BERT(config)
    print(f"BERT: {bert.num_parameters():,} parameters")
    print(f"before pre-training, '{probe[0]} [MASK]{probe[1]}' -> {fill_in(bert, tok, *probe, length)}")
    print(f"1. masked-language-model pre-training on {len(unlabeled)} unlabeled sentences")
    pretrain(bert, ids, mask, tok, mlm_steps, 64, rng)
    print(f"after pre-training,  '{probe[0]} [MASK]{probe[1]}' -> {fill_in(bert, tok, *probe, length)}")

    print(f"2. fine-tuning on {len(data['train'][0])} labeled sentences, testing on {len(data['test'][0])}")
    acc = finetune(bert, data, ft_steps, 32, rng)
    tinyllm.manual_seed(args.seed + 1)
    acc_scratch = finetune(BERT(config), data, ft_steps, 32, rng)
    print(f"test accuracy: {acc:.1%} pre-trained, {acc_scratch:.1%} from scratch (chance: 50%)")


if __name__ == "__main__":
    main()
