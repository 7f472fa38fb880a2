"""Shard-by-shard reading: one block per shard, whatever Ray's read tasks would merge; and
the windows that split a stage into several Ray Data executions."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.shards import in_windows, pending_shards, read_shards


def test_each_shard_is_one_block_with_its_path(ray_session, tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"shard-{i:05d}.parquet"
        pq.write_table(
            pa.table({"note_id": [f"{i}-{j}" for j in range(5)], "x": [j for j in range(5)]}), path
        )
        paths.append(path)
    ds = read_shards(paths, ["note_id"]).materialize()
    blocks = [ray_session.get(ref) for ref in ds.to_arrow_refs()]
    assert len(blocks) == 3
    for block in blocks:
        assert block.num_rows == 5 and block.column_names == ["note_id", "path"]
        assert len(set(block.column("path").to_pylist())) == 1
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"a": [1]}), out / "shard-00001.parquet")
    assert pending_shards(paths, out) == ([paths[0], paths[2]], ["shard-00001.parquet"])


def _execute(calls: list[list[str]]):
    """A stand-in execution that writes every shard it is given, in order."""

    def execute(window: list[Path]):
        calls.append([p.name for p in window])
        yield from ({"shard": p.name} for p in window)

    return execute


def test_past_the_window_the_next_shard_written_ends_it():
    shards = [Path(f"shard-{i}.parquet") for i in range(3)]
    calls = []
    summaries = list(in_windows(shards, 0, _execute(calls)))
    assert [(s["shard"], s["window"]) for s in summaries] == [
        ("shard-0.parquet", 1), ("shard-1.parquet", 2), ("shard-2.parquet", 3),
    ]  # fmt: skip
    assert [len(c) for c in calls] == [3, 2, 1]


def test_within_the_window_one_execution_runs_every_shard():
    calls = []
    shards = [Path(f"shard-{i}.parquet") for i in range(3)]
    assert {s["window"] for s in in_windows(shards, 600, _execute(calls))} == {1}
    assert len(calls) == 1


def test_a_window_that_writes_nothing_ends_the_series():
    calls = []

    def execute(window: list[Path]):
        calls.append(window)
        yield from ()

    assert list(in_windows([Path("shard-0.parquet")], 0, execute)) == []
    assert len(calls) == 1
