"""Small data builders shared by several test modules."""

from __future__ import annotations

import random
from pathlib import Path

DISEASES = ["asthma", "diabetes", "gout", "migraine", "anemia", "psoriasis", "colitis", "lupus"]
TWO_WORD_DISEASES = [("heart", "failure"), ("renal", "colic"), ("lung", "fibrosis")]
OTHERS = ["aspirin", "insulin", "the", "clinic", "nurse", "today", "a", "report", "scan"]


def easy_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences like `the nurse noted asthma and heart failure today .` with IOB2 tags: easy
    enough that a tiny model learns to tag the diseases in a few dozen steps."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(OTHERS, 3)]
        for disease in rng.sample(DISEASES, rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words)), (disease, "B-Disease"))
        if rng.random() < 0.5:
            first, second = rng.choice(TWO_WORD_DISEASES)
            at = rng.randint(0, len(words))
            words[at:at] = [(first, "B-Disease"), (second, "I-Disease")]
        sentences.append([*words, (".", "O")])
    return sentences


def write_easy_corpus(path: Path, n: int, seed: int) -> Path:
    lines = []
    for sentence in easy_sentences(n, seed):
        lines += [f"{w}\t{t}" for w, t in sentence] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
