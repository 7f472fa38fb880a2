"""Parquet corpora as Ray Datasets: counts from the status column, quarantined rows left out,
and one small file cut into several blocks so that every actor of a pool gets work."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.config_base import CorpusRef
from raysynth.dataset import load_documents
from raysynth.schema import ANNOTATIONS


def test_one_small_file_becomes_blocks_and_quarantined_rows_are_counted(ray_session, tmp_path):
    rows = [
        {
            "note_id": f"n{i:02d}",
            "text": f"note {i}",
            "entities": [],
            "status": "quarantined" if i % 5 == 0 else "ok",
        }
        for i in range(23)
    ]
    path = tmp_path / "annotations.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ANNOTATIONS), path, row_group_size=12)

    ds, counts = load_documents(CorpusRef(path=path, format="parquet"), block_rows=4)
    materialized = ds.materialize()
    docs = materialized.take_all()

    assert (counts.rows, counts.used, counts.quarantined) == (23, 18, 5)
    assert sorted(d["doc_id"] for d in docs) == [r["note_id"] for r in rows if r["status"] == "ok"]
    # Row groups of 12 and 11 rows in slices of at most 4: 3 + 3 slices.
    assert materialized.num_blocks() == 6
