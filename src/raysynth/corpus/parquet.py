"""Parquet: one file or a folder of shards (local or any filesystem pyarrow reads, by URI),
with the `documents` schema. Tables keyed by `note_id` (annotations, notes) read too, so a
stage's output converts to CoNLL or JSONL directly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from raysynth import schema
from raysynth.corpus.report import ReadReport
from raysynth.documents import Document
from raysynth.errors import CorpusFormatError

BATCH_ROWS = 1024


def read(path: str | Path, report: ReadReport) -> Iterator[Document]:
    try:
        dataset = pads.dataset(str(path), format="parquet")
    except (OSError, pa.ArrowInvalid) as err:
        raise CorpusFormatError(path, f"cannot open as Parquet ({err})") from None
    names = set(dataset.schema.names)
    id_column = "doc_id" if "doc_id" in names else "note_id"
    missing = [c for c in (id_column, "text") if c not in names]
    if missing:
        raise CorpusFormatError(path, f"missing column(s) {', '.join(missing)}")
    columns = [c for c in schema.DOCUMENTS.names if c in names or c == "doc_id"]
    columns = [id_column if c == "doc_id" else c for c in columns]
    row_number = 0
    for batch in dataset.to_batches(columns=columns, batch_size=BATCH_ROWS):
        for row in batch.to_pylist():
            row_number += 1
            row["doc_id"] = row.pop(id_column)
            if row["doc_id"] is None or row["text"] is None:
                raise CorpusFormatError(path, f"row {row_number}: null {id_column} or text")
            doc = Document.from_row(row)
            yield doc


def write(docs: Iterable[Document], path: Path, report: ReadReport) -> None:
    """Written in row groups of BATCH_ROWS so a large corpus never sits in memory whole."""
    with pq.ParquetWriter(path, schema.DOCUMENTS) as writer:
        batch: list[dict] = []
        for doc in docs:
            batch.append(doc.to_row())
            report.count(doc)
            if len(batch) == BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema.DOCUMENTS))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema.DOCUMENTS))
