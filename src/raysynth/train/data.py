"""Checks and splits of the training documents, run on the driver before any worker starts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from raysynth.annotate.augment import COPY_SEPARATOR


def in_dev(doc_id: str, fraction: float, seed: int) -> bool:
    """A stable hash split: the same documents are held out on every machine and rerun. A
    mention-replacement copy goes where its note goes: a copy of a held-out note in the
    training set would leak it into model selection."""
    family = doc_id.split(COPY_SEPARATOR)[0]
    digest = hashlib.sha256(f"{seed}:{family}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def labels_in(ds: Any) -> set[str]:
    """Every entity label in the dataset, in one streaming pass. Each batch returns its own
    label set and the driver unions them: Ray Data's `unique` would add a shuffle stage that
    costs seconds to start for a handful of strings."""

    def batch_labels(batch: dict[str, Any]) -> dict[str, list[str]]:
        found = {e["label"] for ents in batch["entities"] if ents is not None for e in ents}
        return {"label": sorted(found)}

    return {row["label"] for row in ds.map_batches(batch_labels).take_all()}


def column_totals(ds: Any, columns: Sequence[str]) -> dict[str, int]:
    """Sums of integer columns, one partial sum per batch (see `labels_in` for why)."""

    def partial(batch: dict[str, Any]) -> dict[str, list[int]]:
        return {c: [int(batch[c].sum())] for c in columns}

    rows = ds.map_batches(partial).take_all()
    return {c: sum(row[c] for row in rows) for c in columns}
