"""The generate stage as several Ray Data executions (windows), and its corpus-wide duplicate
index. The test server answers every prompt with the same text, so every note after the
first is an exact duplicate, wherever its window."""

from __future__ import annotations

import pyarrow.parquet as pq

from raysynth.generate.config import GenerateConfig
from raysynth.generate.dedup import DedupIndex
from raysynth.generate.stage import generate
from raysynth.llm.config import OpenAIBackend
from tests.generate.conftest import recipe_dict
from tests.llm.llm_fakes import FakeEndpoint


def test_duplicates_are_found_across_windows(ray_session, tmp_path):
    recipe = recipe_dict(tmp_path, num_notes=6, template="sentence_v1", min_chars=5)
    with FakeEndpoint() as fake:
        backend = OpenAIBackend(base_url=fake.base_url, model="fake", api_key_env=None)
        # Each window is over when its first shard is written: three windows of one shard.
        config = GenerateConfig(
            recipe=recipe, backend=backend, shard_rows=2, window_minutes=1e-9, cache=False
        )
        written = []
        result = generate(config.resolved(tmp_path), tmp_path / "run", on_shard=written.append)
    assert result.windows == 3 and sorted(s["window"] for s in written) == [1, 2, 3]
    notes = [
        r for p in sorted(result.notes_dir.glob("*.parquet")) for r in pq.read_table(p).to_pylist()
    ]
    assert len({n["note_id"] for n in notes}) == 6
    kept = [n["note_id"] for n in notes if n["status"] == "ok"]
    assert len(kept) == 1, [n["reason"] for n in notes]
    removed = [n for n in notes if n["status"] == "removed"]
    assert len(removed) == 5 and {n["reason"] for n in removed} == {f"exact duplicate of {kept[0]}"}
    assert result.counts == {**result.counts, "rows": 6, "ok": 1, "removed": 5}


def test_index_claims(tmp_path):
    index = DedupIndex(str(tmp_path), [])
    assert index.claim([("a", ["x:1", "n:1"]), ("b", ["x:2", "n:1"]), ("c", ["x:3"])]) == [
        None, "near-duplicate of a", None,
    ]  # fmt: skip
    # A writer retried after a crash claims its shard again: its notes are not their own
    # duplicates, and the others stay removed.
    assert index.claim([("b", ["x:2", "n:1"]), ("c", ["x:3"]), ("d", ["x:1"])]) == [
        "near-duplicate of a", None, "exact duplicate of a",
    ]  # fmt: skip
