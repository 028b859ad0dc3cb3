"""Contrastive sentence embeddings: teach a small BERT that paraphrases mean the same thing.

Each "meaning" is a triple (animal, action, place) and can be written in
many ways: six sentence templates, and two words for every concept ("the
cat sleeps on the sofa." / "a kitty is napping on the couch."). A batch holds B pairs of paraphrases; the encoder (BERT, mean
pooled) is trained with the InfoNCE loss so that each sentence's vector is
closer to its own paraphrase than to the other B - 1 sentences of the batch.

Evaluation uses meanings never seen in training: a sentence written with the
first words of each concept queries sentences written with the second words
and another template; is its nearest neighbour (cosine similarity) its
paraphrase? Before training only chance finds it: the two share no content word.

    python examples/contrastive.py            # under a minute on 2 CPU cores
    python examples/contrastive.py --quick    # a few seconds: a smoke test
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import tinyllm
from tinyllm.data import BERT_SPECIALS, BPETokenizer, pad_batch
from tinyllm.models import BERT, BertConfig, SentenceEncoder
from tinyllm.optim import configure_adamw

# Every concept has two surface forms: the model must learn that they mean the same.
ANIMALS = [("cat", "kitty"), ("dog", "puppy"), ("bird", "sparrow"), ("horse", "pony"), ("fox", "vixen"),
           ("duck", "duckling"), ("mouse", "rodent"), ("rabbit", "bunny")]
ACTIONS = [(("sleeps", "sleeping"), ("naps", "napping")), (("eats", "eating"), ("munches", "munching")),
           (("runs", "running"), ("sprints", "sprinting")), (("sings", "singing"), ("hums", "humming")),
           (("hides", "hiding"), ("lurks", "lurking")), (("plays", "playing"), ("frolics", "frolicking"))]
PLACES = [("on the sofa", "on the couch"), ("in the garden", "among the flowers"), ("by the river", "at the riverbank"),
          ("under the bridge", "below the overpass"), ("near the barn", "beside the stable"),
          ("in the kitchen", "by the stove")]
TEMPLATES = ["the {a} {s} {p}.", "{p}, the {a} {s}.", "a {a} is {g} {p}.", "{p} a {a} is {g}!",
             "look, the {a} {s} {p}.", "right now the {a} is {g} {p}."]


def phrase(meaning: tuple, template: str, forms: tuple = (0, 0, 0)) -> str:
    """Write ``meaning`` (animal, action, place indices) with a template and a surface form per concept."""
    a, v, p = meaning
    s, g = ACTIONS[v][forms[1]]
    return template.format(a=ANIMALS[a][forms[0]], s=s, g=g, p=PLACES[p][forms[2]])


def batch_ids(tok: BPETokenizer, texts: list[str], length: int = 24) -> tuple[np.ndarray, np.ndarray]:
    return pad_batch([tok.encode(t) for t in texts], length, pad_id=tok.pad_id)


def retrieval(encoder: SentenceEncoder, tok: BPETokenizer, meanings: list, show: int = 0) -> float:
    """Top-1 accuracy: each meaning written one way (first forms) queries all meanings written
    another way (second forms, another template): no content word is shared with the answer."""
    queries = [phrase(m, TEMPLATES[0], (0, 0, 0)) for m in meanings]
    keys = [phrase(m, TEMPLATES[2], (1, 1, 1)) for m in meanings]
    q = encoder.embed(*batch_ids(tok, queries))                       # (N, C) unit vectors
    k = encoder.embed(*batch_ids(tok, keys))                          # (N, C)
    sim = q @ k.T                                                      # (N, N) cosine similarities
    for i in range(show):
        top = np.argsort(-sim[i])[:3]
        print(f"    '{queries[i]}' -> " + ", ".join(f"'{keys[j]}' ({sim[i, j]:.2f})" for j in top))
    return float((sim.argmax(axis=1) == np.arange(len(meanings))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model and a few steps (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tinyllm.manual_seed(args.seed)
    steps = 10 if args.quick else 250

    meanings = list(itertools.product(range(len(ANIMALS)), range(len(ACTIONS)), range(len(PLACES))))  # 288
    rng.shuffle(meanings)
    test, train = meanings[:64], meanings[64:]
    corpus = [phrase(m, t, f) for m in meanings for t in TEMPLATES for f in itertools.product((0, 1), repeat=3)]
    tok = BPETokenizer.train(corpus, vocab_size=300, special_tokens=BERT_SPECIALS)
    size = dict(n_layer=1, n_head=2, n_embd=32) if args.quick else dict(n_layer=2, n_head=4, n_embd=64)
    encoder = SentenceEncoder(BERT(BertConfig(vocab_size=tok.vocab_size, block_size=24, pad_id=tok.pad_id,
                                              dropout=0.1, **size)))
    print(f"{len(train)} training meanings x {len(TEMPLATES)} phrasings; {len(test)} unseen meanings for testing")
    print("before training, nearest neighbours of unseen sentences:")
    before = retrieval(encoder, tok, test, show=2)

    opt = configure_adamw(encoder, lr=2e-3, weight_decay=0.01)
    t0 = time.perf_counter()
    for it in range(steps):
        rows = rng.choice(len(train), size=32, replace=False)         # distinct meanings: no false negatives
        pairs = [rng.choice(len(TEMPLATES), size=2, replace=False) for _ in rows]
        forms = rng.integers(0, 2, size=(len(rows), 2, 3))             # a random surface form per concept
        a = [phrase(train[r], TEMPLATES[i], f[0]) for r, (i, _), f in zip(rows, pairs, forms)]
        b = [phrase(train[r], TEMPLATES[j], f[1]) for r, (_, j), f in zip(rows, pairs, forms)]
        (ia, ma), (ib, mb) = batch_ids(tok, a), batch_ids(tok, b)
        loss = encoder.loss(ia, ib, ma, mb, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (it + 1) % max(steps // 5, 1) == 0:
            print(f"  step {it + 1:4d}/{steps}  InfoNCE loss {loss.item():.3f} "
                  f"(chance: ln 32 = 3.47)  ({time.perf_counter() - t0:.0f}s)")

    print("after training:")
    after = retrieval(encoder, tok, test, show=2)
    print(f"paraphrase retrieval on unseen meanings (top-1 of {len(test)}): {before:.1%} before, {after:.1%} after")


if __name__ == "__main__":
    main()
