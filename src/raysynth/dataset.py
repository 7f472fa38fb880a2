"""Corpora as Ray Datasets of documents, for the stages that stream them (train, evaluate).

Parquet (the `annotations` table, or any `documents` table, on any filesystem pyarrow reads)
streams through Ray Data; the other corpus formats are read by `raysynth.corpus` on the driver,
which suits the size of real test sets and hand-made corpora. Annotation rows whose status is
not ok are counted and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from raysynth.config_base import CorpusRef
from raysynth.corpus import guess_format, parse_label_map, read_documents
from raysynth.errors import ConfigError
from raysynth.schema import DOCUMENTS, STATUS_OK

BLOCK_ROWS = 256
DOC_COLUMNS = ("doc_id", "text", "entities", "tokens", "token_spans")


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


def scored_ref(ref: CorpusRef, label_map: dict[str, str]) -> CorpusRef:
    """`ref` with `label_map_for`'s combined mapping as its own: read with
    `corpus.read_documents`, its gold is in the labels the scorer compares against."""
    mapping = label_map_for(ref, label_map)
    spec = ",".join(f"{k}={v}" for k, v in mapping.items()) or None
    return ref.model_copy(update={"label_map": spec})


def load_documents(ref: CorpusRef) -> tuple[Any, SourceCounts]:
    """A Dataset with DOC_COLUMNS, and how many rows were read and left out."""
    import ray.data

    if (ref.format or guess_format(ref.path)) != "parquet":
        rows = [d.to_row() for d in read_documents(ref.path, ref.format, scheme=ref.scheme)]
        table = pa.Table.from_pylist(rows, schema=DOCUMENTS).select(list(DOC_COLUMNS))
        # Several blocks, so that an actor pool downstream has work for every actor.
        blocks = [table.slice(i, BLOCK_ROWS) for i in range(0, len(table), BLOCK_ROWS)]
        return ray.data.from_arrow(blocks) if rows else None, SourceCounts(*[len(rows)] * 2, 0)
    ds = ray.data.read_parquet(str(ref.path))
    total = ds.count()
    has_status = "status" in ds.schema().names
    ds = ds.map_batches(_normalize, batch_format="pyarrow", zero_copy_batch=True)
    if has_status:
        ds = ds.filter(lambda row: row["status"] == STATUS_OK)
    used = ds.count() if has_status else total
    ds = ds.select_columns(list(DOC_COLUMNS))
    return ds, SourceCounts(total, used, total - used)


def _normalize(table: pa.Table) -> pa.Table:
    """Annotations are keyed by note_id, documents by doc_id; tokens may be absent."""
    if "doc_id" not in table.column_names and "note_id" in table.column_names:
        table = table.rename_columns(
            ["doc_id" if c == "note_id" else c for c in table.column_names]
        )
    missing = [c for c in ("doc_id", "text", "entities") if c not in table.column_names]
    if missing:
        raise ConfigError(f"the data lacks column(s) {', '.join(missing)}")
    for name in ("tokens", "token_spans"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), DOCUMENTS.field(name).type))
    return table
