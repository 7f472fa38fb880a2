"""A note's labels from its sources, and whether the note is fit to train on.

Sources: the seeds the generator was asked to mention (located by the generate stage), the
LLM's answers (several strategies or samples vote: self-consistency) and the dictionary. A
span is kept once, with every source that gave it (`seed+llm`); overlaps are then resolved by
the configured policy (raysynth.alignment.resolve_overlaps), since flat tags allow no nesting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from raysynth.alignment import resolve_overlaps
from raysynth.annotate.config import MergeConfig
from raysynth.documents import Entity
from raysynth.schema import STATUS_OK, STATUS_QUARANTINED

SOURCE_ORDER = ("seed", "llm", "kb")


@dataclass(frozen=True)
class Answer:
    """One LLM answer for a note, after parsing and alignment."""

    entities: tuple[Entity, ...]
    mentions: int
    hallucinated: int
    error: str | None  # LLM call or parse failure; None when the answer was read

    @property
    def usable(self) -> bool:
        return self.error is None


def vote(answers: Sequence[Answer], min_votes: int | None) -> list[Entity]:
    """Spans returned by at least `min_votes` answers (default: more than half of all
    answers asked for, failed ones included, so a failure never lowers the bar)."""
    needed = min_votes or len(answers) // 2 + 1
    counts = Counter((e.start, e.end, e.label) for a in answers for e in set(a.entities))
    first = {(e.start, e.end, e.label): e for a in answers for e in a.entities}
    return [first[key] for key, n in counts.items() if n >= needed]


def combine(by_source: dict[str, Sequence[Entity]], overlap: str) -> tuple[list[Entity], int]:
    """One entity per (start, end, label) with the joined names of its sources, overlaps
    resolved; returns them and how many were dropped as overlapping."""
    sources: dict[tuple[int, int, str], list[str]] = {}
    texts: dict[tuple[int, int, str], str | None] = {}
    for name in SOURCE_ORDER:
        for e in by_source.get(name, ()):
            key = (e.start, e.end, e.label)
            if name not in sources.setdefault(key, []):
                sources[key].append(name)
            texts.setdefault(key, e.text)
    merged = [Entity(s, e, lab, texts[(s, e, lab)], "+".join(sources[(s, e, lab)]))
              for s, e, lab in sources]  # fmt: skip
    return resolve_overlaps(merged, overlap)


def merge_note(
    seeds: Sequence[Entity],
    answers: Sequence[Answer],
    kb: Sequence[Entity],
    config: MergeConfig,
) -> tuple[list[Entity], int]:
    """The note's entities from the configured sources, and the overlaps dropped."""
    by_source: dict[str, Sequence[Entity]] = {}
    if "seed" in config.sources:
        by_source["seed"] = seeds
    if "llm" in config.sources:
        by_source["llm"] = vote(answers, config.min_votes)
    if "kb" in config.sources:
        by_source["kb"] = kb
    return combine(by_source, config.overlap)


def decide(
    answers: Sequence[Answer],
    entities: Sequence[Entity],
    seeds: Sequence[Entity],
    config: MergeConfig,
) -> tuple[str, str | None]:
    """(status, reason): quarantined when the LLM answers cannot be trusted or the labels
    contradict what is known to be in the note."""
    if "llm" in config.sources and answers:
        usable = [a for a in answers if a.usable]
        if not usable:
            return STATUS_QUARANTINED, f"no usable answer: {answers[0].error}"
        mentions = sum(a.mentions for a in usable)
        if mentions and sum(a.hallucinated for a in usable) == mentions:
            return STATUS_QUARANTINED, f"every mention hallucinated ({mentions})"
    if seeds and not entities:
        return STATUS_QUARANTINED, "no entities although seeded mentions are in the text"
    return STATUS_OK, None
