"""Scores of a whole test set, added up batch by batch so the driver's memory stays flat.

Entity-level counts add across documents, so each batch of the `predictions` table is scored
(with `raysynth.scoring`, one document at a time) into a `Tally` of counts, and the driver sums
one small tally per batch. The 95% interval of the strict F1 comes from a Poisson bootstrap:
each document gets a Poisson(1) weight per replicate, which approximates resampling documents
with replacement and, unlike it, can be summed batch by batch.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from raysynth.documents import Entity
from raysynth.scoring import PRF, Scores, ScoreSet, score

MODES = ("seqeval_strict", "seqeval_default", "span_exact", "span_partial")
ERROR_KINDS = ("boundary", "type", "boundary_type", "missed", "spurious")
OVERALL = "(overall)"


@dataclass
class Tally:
    """Counts per mode and label: [tp, n_pred, n_gold, gold_hit] (gold_hit differs from tp
    only for partial matching, where one prediction may cover several golds)."""

    docs: int = 0
    empty_docs: int = 0
    docs_without_gold: int = 0
    unscored_gold: int = 0
    unseen_words: int = 0
    gold_conflicts: int = 0
    counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    bootstrap: list[list[float]] = field(default_factory=list)  # replicate -> tp, n_pred, n_gold

    def merge(self, other: Tally, max_examples: int) -> None:
        for name in (
            "docs",
            "empty_docs",
            "docs_without_gold",
            "unscored_gold",
            "unseen_words",
            "gold_conflicts",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mode, labels in other.counts.items():
            mine = self.counts.setdefault(mode, {})
            for label, values in labels.items():
                mine[label] = [a + b for a, b in zip(mine.get(label, [0] * 4), values, strict=True)]
        self.errors = dict(Counter(self.errors) + Counter(other.errors))
        for kind, rows in other.examples.items():
            kept = self.examples.setdefault(kind, [])
            kept += rows[: max_examples - len(kept)]
        if other.bootstrap:
            mine_b = np.asarray(self.bootstrap or np.zeros_like(other.bootstrap))
            self.bootstrap = (mine_b + np.asarray(other.bootstrap)).tolist()

    def scores(self) -> Scores:
        sets = {mode: _score_set(self.counts.get(mode, {})) for mode in MODES}
        return Scores(n_docs=self.docs, **sets)

    def f1_interval(self) -> tuple[float, float] | None:
        """The 2.5th and 97.5th percentiles of the bootstrap strict F1."""
        if not self.bootstrap:
            return None
        b = np.asarray(self.bootstrap)
        denominator = b[:, 1] + b[:, 2]
        f1 = np.divide(2 * b[:, 0], denominator, out=np.zeros(len(b)), where=denominator > 0)
        low, high = np.percentile(f1, [2.5, 97.5])
        return float(low), float(high)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Tally:
        return cls(**json.loads(text))


def _score_set(labels: dict[str, list[int]]) -> ScoreSet:
    def prf(values: list[int]) -> PRF:
        tp, n_pred, n_gold, gold_hit = values
        precision = tp / n_pred if n_pred else 0.0
        recall = gold_hit / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return PRF(precision, recall, f1, tp, n_pred, n_gold)

    per_type = {k: prf(v) for k, v in sorted(labels.items()) if k != OVERALL}
    return ScoreSet(overall=prf(labels.get(OVERALL, [0] * 4)), per_type=per_type)


def tally_batch(
    batch: dict[str, Any], model_labels: list[str], replicates: int, seed: int, max_examples: int
) -> dict[str, list[str]]:
    """One Tally (as JSON) for a batch of prediction rows; used with Ray Data map_batches."""
    tally = Tally()
    strict_counts = []
    ids = [str(i) for i in batch["doc_id"]]
    for i in range(len(ids)):
        row = {key: batch[key][i] for key in batch}
        strict_counts.append(_add_document(tally, row, set(model_labels), max_examples))
    if replicates and ids:
        digest = hashlib.sha256(f"{seed}:{ids[0]}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        weights = rng.poisson(1.0, size=(replicates, len(ids)))
        tally.bootstrap = (weights @ np.asarray(strict_counts, dtype=float)).tolist()
    return {"tally": [tally.to_json()]}


def _add_document(
    tally: Tally, row: dict[str, Any], labels: set[str], max_examples: int
) -> list[int]:
    gold = [Entity.from_row(e) for e in row["gold"] if e["label"] in labels]
    pred = [Entity.from_row(e) for e in row["pred"]]
    tally.docs += 1
    tally.empty_docs += not str(row["text"]).strip()
    tally.docs_without_gold += not len(row["gold"])
    for name in ("unscored_gold", "unseen_words", "gold_conflicts"):
        setattr(tally, name, getattr(tally, name) + int(row[name] or 0))
    scores = score([list(row["gold_tags"])], [list(row["pred_tags"])], [gold], [pred])
    for mode in MODES:
        score_set: ScoreSet = getattr(scores, mode)
        labelled = {OVERALL: score_set.overall, **score_set.per_type}
        mine = tally.counts.setdefault(mode, {})
        for label, prf in labelled.items():
            hit = round(prf.recall * prf.n_gold)
            add = [prf.tp, prf.n_pred, prf.n_gold, hit]
            mine[label] = [a + b for a, b in zip(mine.get(label, [0] * 4), add, strict=True)]
    for kind, g, p in classify_errors(gold, pred):
        tally.errors[kind] = tally.errors.get(kind, 0) + 1
        kept = tally.examples.setdefault(kind, [])
        if len(kept) < max_examples:
            kept.append(_example(row, g, p))
    strict = scores.seqeval_strict.overall
    return [strict.tp, strict.n_pred, strict.n_gold]


def classify_errors(
    gold: list[Entity], pred: list[Entity]
) -> list[tuple[str, Entity | None, Entity | None]]:
    """Each wrong prediction and each missed gold, by kind: `type` (same span, other label),
    `boundary` (same label, overlapping but different span), `boundary_type` (overlapping,
    other span and label), `spurious` (overlaps no gold), `missed` (no prediction overlaps)."""
    exact = {(g.start, g.end, g.label) for g in gold}
    errors: list[tuple[str, Entity | None, Entity | None]] = []
    for p in pred:
        if (p.start, p.end, p.label) in exact:
            continue
        near = [g for g in gold if g.start < p.end and p.start < g.end]
        if not near:
            errors.append(("spurious", None, p))
            continue
        same_span = [g for g in near if (g.start, g.end) == (p.start, p.end)]
        same_label = [g for g in near if g.label == p.label]
        kind = "type" if same_span else "boundary" if same_label else "boundary_type"
        errors.append((kind, (same_span or same_label or near)[0], p))
    for g in gold:
        if not any(p.start < g.end and g.start < p.end for p in pred):
            errors.append(("missed", g, None))
    return errors


def _example(row: dict[str, Any], gold: Entity | None, pred: Entity | None) -> dict[str, Any]:
    """The mentions only, never the whole text: a report may be shared more widely than the
    test set it describes."""
    text = str(row["text"])
    return {
        "doc_id": str(row["doc_id"]),
        "gold": f"{text[gold.start : gold.end]} [{gold.label}]" if gold else None,
        "pred": f"{text[pred.start : pred.end]} [{pred.label}]" if pred else None,
    }
