"""Label consistency over a whole corpus: one vote per string on a teacher's labels.

A teacher labels a string in some of its occurrences and not in others ('G6PD deficiency'
in nine abstracts of ten, 'bp' in two sentences of thirty): the student then learns both
answers for the same words. Counting, over the whole unlabelled text, how often each
labelled string is labelled where it occurs, and making that answer the same everywhere
(labelled in all its occurrences when mostly labelled, in none when rarely), gives the
student consistent labels. On NCBI-disease train, the self-training teacher's labels went
from 0.662 to 0.696 F1 (0.678 to 0.714 in another run) against the gold that this step never
reads, mostly from fewer spurious labels (docs/RESULTS.md).

Written by hand: the counting is two Ray Data group-bys; what no library does is deciding
per string with the corpus's counts, a few lines here. Occurrences are found with the
dictionary matcher (`annotate.kb`) over the labelled strings, compared with their case:
'AT' (ataxia-telangiectasia) is not counted where the text says 'at'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic import Field, model_validator

from raysynth.annotate.kb import DictionaryMatcher
from raysynth.config_base import Strict
from raysynth.documents import Entity
from raysynth.schema import ANNOTATIONS

if TYPE_CHECKING:
    import ray.data

SOURCE = "vote"
VOTED_OUT = "rarely labelled elsewhere"


class Consistency(Strict):
    """How the vote decides, per labelled string, from the share of its occurrences in the
    text that the teacher labelled."""

    label_all: float = Field(
        default=0.7,
        gt=0.0,
        le=1.0,
        description="A string labelled in at least this share of its occurrences is "
        "labelled in all of them.",
    )
    drop_below: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="A string labelled in less than this share of its occurrences is "
        "labelled in none of them (each row's `reason` names what it lost).",
    )
    min_occurrences: int = Field(
        default=2, ge=1, description="Strings seen fewer times than this are left as they are."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Consistency:
        if self.drop_below > self.label_all:
            raise ValueError(
                f"drop_below ({self.drop_below}) is above label_all ({self.label_all})"
            )
        return self


@dataclass(frozen=True)
class Votes:
    """The strings to label everywhere (with their label) and the strings to label nowhere."""

    everywhere: dict[str, str]
    nowhere: frozenset[str]


def vote(labels: ray.data.Dataset, config: Consistency) -> ray.data.Dataset:
    """`labels` (annotations rows) with every voted string labelled the same everywhere;
    read three times, so pass a materialized dataset."""
    labelled = _counts(labels.flat_map(_labelled))
    if not labelled:
        return labels
    forms = {form for form, _ in labelled}
    matcher = DictionaryMatcher({"form": forms}, variants=False)
    occurrences = labels.flat_map(_occurrences, fn_kwargs={"matcher": matcher, "forms": forms})
    seen = {form: n for (form, _), n in _counts(occurrences).items()}
    votes = decide(labelled, seen, config)
    return labels.map_batches(
        apply_votes, fn_kwargs={"votes": votes, "matcher": matcher}, batch_format="pyarrow"
    )


def decide(
    labelled: dict[tuple[str, str], int], seen: dict[str, int], config: Consistency
) -> Votes:
    """The vote from how often each (string, label) was labelled and each string occurs:
    everywhere with its most frequent label when that label alone reaches `label_all`."""
    by_form: dict[str, Counter[str]] = {}
    for (form, label), n in labelled.items():
        by_form.setdefault(form, Counter())[label] += n
    everywhere, nowhere = {}, set()
    for form, labels in by_form.items():
        occurrences = max(seen.get(form, 0), labels.total())
        if occurrences < config.min_occurrences:
            continue
        label, n = labels.most_common(1)[0]
        if n / occurrences >= config.label_all:
            everywhere[form] = label
        elif labels.total() / occurrences < config.drop_below:
            nowhere.add(form)
    return Votes(everywhere, frozenset(nowhere))


def apply_votes(batch: pa.Table, votes: Votes, matcher: DictionaryMatcher) -> pa.Table:
    """One batch of annotations rows with the votes applied: a string voted nowhere is
    dropped (named in `reason`), one voted everywhere is labelled where it occurs and no
    kept label overlaps it."""
    rows = batch.to_pylist()
    for row in rows:
        kept, dropped = [], []
        for e in row["entities"]:
            (dropped if e["text"] in votes.nowhere else kept).append(e)
        for match in _matches(row["text"], matcher, votes.everywhere):
            if not any(e["start"] < match.end and match.start < e["end"] for e in kept):
                kept.append(match.to_row())
        row["entities"] = sorted(kept, key=lambda e: e["start"])
        if dropped:
            note = f"not labelled, {VOTED_OUT}: {'; '.join(e['text'] for e in dropped)}"
            row["reason"] = f"{row['reason']}; {note}" if row["reason"] else note
    return pa.Table.from_pylist(rows, schema=ANNOTATIONS)


def _labelled(row: dict[str, Any]) -> Iterator[dict[str, str]]:
    for e in row["entities"]:
        yield {"form": e["text"], "label": e["label"]}


def _occurrences(
    row: dict[str, Any], matcher: DictionaryMatcher, forms: set[str]
) -> Iterator[dict[str, str]]:
    for match in matcher.match(row["text"]):
        if match.text in forms:
            yield {"form": match.text, "label": ""}


def _matches(text: str, matcher: DictionaryMatcher, labels: dict[str, str]) -> Iterator[Entity]:
    for match in matcher.match(text):
        label = labels.get(match.text)
        if label is not None:
            yield Entity(match.start, match.end, label, match.text, SOURCE)


def _counts(rows: ray.data.Dataset) -> dict[tuple[str, str], int]:
    counted = rows.groupby(["form", "label"]).count()
    return {(r["form"], r["label"]): r["count()"] for r in counted.iter_rows()}
