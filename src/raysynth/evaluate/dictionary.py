"""The model's predictions combined with the dictionary's matches at inference time.

The lexicons that labelled the synthetic notes are on the user's machine anyway, and the model
does not learn all they know: a model trained on SmolLM2 sentences finds 'breast cancer' where
the lexicon has 'male breast cancer', cuts 'Wiskott-Aldrich syndrome' at its hyphen, and misses
rare terms it never saw in a sentence (RESULTS.md, "The model and the dictionary together").
The model, in turn, finds the qualifiers, coordinations and unseen names no list has. Two modes:

- "repair": a prediction overlapping a longer dictionary match of its label becomes that match
  (the dictionary fixes the model's boundaries and adds no mention);
- "union": repair, plus every dictionary match no prediction overlaps.

Written here because no library combines span sets this way; overlaps left between the two
sources are resolved once, by `alignment.entities_to_tags` (the longest span wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from raysynth.documents import Entity

DictionaryMode = Literal["off", "repair", "union"]


def _overlaps(a: Entity, b: Entity) -> bool:
    return a.start < b.end and b.start < a.end


def _repaired(prediction: Entity, matches: Sequence[Entity]) -> Entity:
    longer = [
        m
        for m in matches
        if m.label == prediction.label
        and _overlaps(m, prediction)
        and m.end - m.start > prediction.end - prediction.start
    ]
    return max(longer, key=lambda m: m.end - m.start) if longer else prediction


def combine(
    predictions: Sequence[Entity], matches: Sequence[Entity], mode: DictionaryMode
) -> list[Entity]:
    """The model's `predictions` and the dictionary's `matches` of one text, by `mode`; a
    span both give (two predictions repaired to one match) is kept once, in text order."""
    if mode == "off":
        return list(predictions)
    kept = {(e.start, e.end, e.label): e for e in (_repaired(p, matches) for p in predictions)}
    if mode == "union":
        for m in matches:
            if not any(_overlaps(m, e) for e in kept.values()):
                kept[(m.start, m.end, m.label)] = m
    return sorted(kept.values(), key=lambda e: (e.start, e.end))
