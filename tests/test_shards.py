"""Shard-by-shard reading: one block per shard, whatever Ray's read tasks would merge; and
the windows that split a stage into several Ray Data executions."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysynth.errors import ConfigError
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


def _execute(window: list[Path]):
    """A stand-in execution that writes every shard it is given, in order, and says how many
    it was given and which process ran it (a window runs in a process of its own, so a list
    it appended to would stay there)."""
    for p in window:
        yield {"shard": p.name, "given": len(window), "pid": os.getpid()}


def test_past_the_window_the_next_shard_written_ends_it(ray_session):
    shards = [Path(f"shard-{i}.parquet") for i in range(3)]
    summaries = list(in_windows(shards, 0, _execute))
    assert [(s["shard"], s["window"], s["given"]) for s in summaries] == [
        ("shard-0.parquet", 1, 3), ("shard-1.parquet", 2, 2), ("shard-2.parquet", 3, 1),
    ]  # fmt: skip
    # Each window in a fresh process, none of them the driver: it holds no Ray Data state.
    pids = [s["pid"] for s in summaries]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert all(s["window_rss_mb"] > 0 for s in summaries)


def test_within_the_window_one_execution_runs_every_shard(ray_session):
    shards = [Path(f"shard-{i}.parquet") for i in range(3)]
    summaries = list(in_windows(shards, 600, _execute))
    assert {(s["window"], s["given"]) for s in summaries} == {(1, 3)}


def _nothing(window: list[Path]):
    yield from ()


def test_a_window_that_writes_nothing_ends_the_series(ray_session):
    assert list(in_windows([Path("shard-0.parquet")], 0, _nothing)) == []


def _fails(window: list[Path]):
    yield {"shard": window[0].name}
    raise ConfigError(f"{window[1].name}: cannot be read")


def test_a_stage_error_in_a_window_reaches_the_driver_as_itself(ray_session):
    shards = [Path(f"shard-{i}.parquet") for i in range(2)]
    windows = in_windows(shards, 600, _fails)
    assert next(windows)["shard"] == "shard-0.parquet"
    with pytest.raises(ConfigError, match="^shard-1.parquet: cannot be read$"):
        next(windows)
