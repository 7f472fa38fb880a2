"""Parquet corpora as Ray Datasets: counts from the status column, quarantined rows left out,
and one small file cut into several blocks so that every actor of a pool gets work."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysynth.config_base import CorpusRef
from raysynth.dataset import load_documents
from raysynth.errors import ConfigError
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


def test_small_row_groups_are_packed_and_the_block_count_is_bounded(
    ray_session, tmp_path, monkeypatch
):
    """Many files of small row groups: packed into blocks of `block_rows`, and into at most
    MAX_BLOCKS larger ones when there would be more (the driver keeps state per block)."""
    import raysynth.dataset

    folder = tmp_path / "set"
    folder.mkdir()
    ids = []
    for f in range(5):
        rows = [{"note_id": f"f{f}-{i}", "text": f"note {i}", "entities": [], "status": "ok"}
                for i in range(7)]  # fmt: skip
        ids += [r["note_id"] for r in rows]
        table = pa.Table.from_pylist(rows, schema=ANNOTATIONS)
        pq.write_table(table, folder / f"part-{f}.parquet", row_group_size=2)
    ref = CorpusRef(path=folder, format="parquet")

    packed, counts = load_documents(ref, block_rows=10)
    packed = packed.materialize()
    assert counts.used == 35
    assert sorted(d["doc_id"] for d in packed.take_all()) == sorted(ids)
    # Groups of 2, 2, 2, 1 rows per file, packed in order up to 10 rows: 4 blocks.
    assert packed.num_blocks() == 4

    monkeypatch.setattr(raysynth.dataset, "MAX_BLOCKS", 3)
    bounded, _ = load_documents(ref, block_rows=2)
    bounded = bounded.materialize()
    assert bounded.num_blocks() <= 3
    assert sorted(d["doc_id"] for d in bounded.take_all()) == sorted(ids)


def test_a_file_that_is_not_parquet_is_named_in_a_config_error(ray_session, tmp_path):
    """The plan is made in a task; its error reaches the user as the driver's would."""
    path = tmp_path / "notes.parquet"
    path.write_text("doc_id,text\n1,not parquet\n")
    with pytest.raises(ConfigError, match="notes.parquet: cannot read as Parquet"):
        load_documents(CorpusRef(path=path, format="parquet"))


def test_a_folder_of_links_to_annotation_folders_reads_them_all(ray_session, tmp_path):
    """Two corpora trained on at once (jobs/configs/experiments/tang-both-corpora.yaml): a
    folder holding a link to each one's annotation folder, both with a shard-00000."""
    for corpus in ("first", "second"):
        rows = [{"note_id": f"{corpus}-{i}", "text": "note", "entities": [], "status": "ok"}
                for i in range(3)]  # fmt: skip
        (tmp_path / corpus).mkdir()
        table = pa.Table.from_pylist(rows, schema=ANNOTATIONS)
        pq.write_table(table, tmp_path / corpus / "shard-00000.parquet")
        (tmp_path / "both").mkdir(exist_ok=True)
        (tmp_path / "both" / corpus).symlink_to(tmp_path / corpus)

    ds, counts = load_documents(CorpusRef(path=tmp_path / "both", format="parquet"))

    assert (counts.rows, counts.used) == (6, 6)
    assert {d["doc_id"] for d in ds.take_all()} == {f"{c}-{i}" for c in ("first", "second")
                                                     for i in range(3)}  # fmt: skip
