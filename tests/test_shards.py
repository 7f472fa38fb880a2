"""Shard-by-shard reading: one block per shard, whatever Ray's read tasks would merge."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.shards import pending_shards, read_shards


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
