"""Training and dev documents as Ray Datasets, checked before any worker starts.

Parquet (the `annotations` table, or any `documents` table) streams through Ray Data; the
other corpus formats are read by `raysynth.corpus` on the driver, which suits the size of real
dev sets and hand-made corpora. Quarantined annotation rows are counted, never trained on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from raysynth.config_base import CorpusRef
from raysynth.corpus import guess_format, parse_label_map, read_documents
from raysynth.errors import ConfigError
from raysynth.schema import STATUS_OK

DOC_COLUMNS = ("doc_id", "text", "entities", "token_spans")


@dataclass
class SourceCounts:
    """Rows read, rows used, and rows left out with the reason (status != ok)."""

    rows: int
    used: int
    quarantined: int


def label_map_for(ref: CorpusRef, label_map: dict[str, str]) -> dict[str, str]:
    """The corpus's own mapping (`ref.label_map`) followed by the training one."""
    combined = {k: label_map.get(v, v) for k, v in parse_label_map(ref.label_map).items()}
    return {**label_map, **combined}


def load_documents(ref: CorpusRef) -> tuple[Any, SourceCounts]:
    """A Dataset with DOC_COLUMNS, and how many rows were read and left out."""
    import ray.data

    if (ref.format or guess_format(ref.path)) != "parquet":
        rows = [
            _doc_row(d.to_row()) for d in read_documents(ref.path, ref.format, scheme=ref.scheme)
        ]
        return ray.data.from_items(rows) if rows else None, SourceCounts(len(rows), len(rows), 0)
    ds = ray.data.read_parquet(str(ref.path))
    total = ds.count()
    has_status = "status" in ds.schema().names
    ds = ds.map_batches(_normalize, batch_format="pyarrow", zero_copy_batch=True)
    if has_status:
        ds = ds.filter(lambda row: row["status"] == STATUS_OK)
    used = ds.count() if has_status else total
    ds = ds.select_columns(list(DOC_COLUMNS))
    return ds, SourceCounts(total, used, total - used)


def _doc_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in DOC_COLUMNS}


def _normalize(table: pa.Table) -> pa.Table:
    """Annotations are keyed by note_id, documents by doc_id; token_spans may be absent."""
    if "doc_id" not in table.column_names and "note_id" in table.column_names:
        table = table.rename_columns(
            ["doc_id" if c == "note_id" else c for c in table.column_names]
        )
    if "token_spans" not in table.column_names:
        table = table.append_column(
            "token_spans", pa.nulls(len(table), pa.list_(pa.list_(pa.int32())))
        )
    missing = [c for c in ("doc_id", "text", "entities") if c not in table.column_names]
    if missing:
        raise ConfigError(f"training data lacks column(s) {', '.join(missing)}")
    return table


def in_dev(doc_id: str, fraction: float, seed: int) -> bool:
    """A stable hash split: the same documents are held out on every machine and rerun."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
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
