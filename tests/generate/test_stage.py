"""The generate stage against the real llama.cpp server (SmolLM2, the session fixture)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from raysynth.generate.config import GenerateConfig
from raysynth.generate.stage import generate
from raysynth.schema import NOTES
from tests.generate.conftest import recipe_dict


def _config(tmp_path, llama_server, num_notes: int, shard_rows: int) -> GenerateConfig:
    lexicons = tmp_path / "lexicons"
    lexicons.mkdir(exist_ok=True)
    recipe = recipe_dict(
        lexicons,
        num_notes=num_notes,
        template="sentence_v1",
        min_chars=10,
        sampling={"max_tokens": 24, "temperature": 0.7},
    )
    backend = llama_server.endpoint.model_copy(update={"max_in_flight": 2, "batch_size": 2})
    return GenerateConfig(recipe=recipe, backend=backend, shard_rows=shard_rows).resolved(tmp_path)


def _notes(result) -> list[dict]:
    rows = []
    for path in sorted(result.notes_dir.glob("shard-*.parquet")):
        table = pq.read_table(path)
        assert table.schema.equals(NOTES)
        rows += table.to_pylist()
    return rows


def _prompt_ids(result) -> list[str]:
    paths = sorted((result.out_dir / "prompts").glob("shard-*.parquet"))
    return [i for p in paths for i in pq.read_table(p, columns=["note_id"])[0].to_pylist()]


def test_short_run_writes_notes_with_real_seed_spans(ray_session, llama_server, tmp_path):
    result = generate(_config(tmp_path, llama_server, 6, 3), tmp_path / "run")
    notes = _notes(result)
    assert sorted(n["note_id"] for n in notes) == sorted(_prompt_ids(result))
    c = result.counts
    assert c["rows"] == 6 == c["ok"] + c["failed"] + c["removed"]
    assert result.stats["reconciles"] and result.shards_written and not result.shards_skipped
    tiers = set()
    for note in notes:
        generator = json.loads(note["generator"])
        assert generator["template"] == "sentence_v1" and generator["seed"] == 1
        assert note["status"] in ("ok", "failed", "removed")
        assert note["status"] == "ok" or note["reason"]
        text = note["text"] or ""
        for e in note["entities"]:
            assert text[e["start"] : e["end"]] == e["text"] and e["source"] == "seed"
        if note["status"] == "ok":  # a note removed as meta-text or too short is not matched
            assert len(note["seed_matches"]) == len(note["seed_entities"])
        for m in note["seed_matches"]:
            tiers.add(m["match"])
            found = text[m["start"] : m["end"]] if m["start"] is not None else None
            if m["match"] == "exact":
                assert found == m["text"]
            elif m["match"] == "case":
                assert found.lower() == m["text"].lower()
            elif m["match"] == "missing":
                assert m["start"] is None and m["count"] == 0
    assert tiers & {"exact", "case"}, "the model used no seed at all: check the prompt"
    stats = json.loads(result.stats_path.read_text())
    assert set(stats["seed_coverage"]) <= {"DISEASE", "DRUG"}


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_without_duplicates(ray_session, llama_server, tmp_path):
    config = _config(tmp_path, llama_server, 8, 2)  # 4 shards of 2
    run_dir = tmp_path / "run"

    def stop(summary):
        raise Interrupt(summary["shard"])

    with pytest.raises(Interrupt):
        generate(config, run_dir, on_shard=stop)
    notes_dir = run_dir / "generate" / "notes"
    # Ray Data may finish shards already in flight after the driver stops; to make the
    # interruption land mid-corpus on any machine, the shards after the first written one
    # are deleted, as if the job had died before writing them.
    written = sorted(p.name for p in notes_dir.glob("shard-*.parquet"))
    assert written
    for name in written[1:]:
        (notes_dir / name).unlink()
    written = written[:1]
    (notes_dir / ".shard-00003.parquet.deadbeef.tmp").write_bytes(b"cut short")  # a torn write

    result = generate(config, run_dir)
    assert set(written) <= set(result.shards_skipped)
    assert sorted(result.shards_skipped + result.shards_written) == [
        f"shard-0000{i}.parquet" for i in range(4)
    ]
    ids = [n["note_id"] for n in _notes(result)]
    assert len(ids) == len(set(ids)) == 8
    assert sorted(ids) == sorted(_prompt_ids(result))
    assert result.counts["rows"] == 8 and result.stats["reconciles"]
    # Nothing left to do: a third run writes nothing.
    assert generate(config, run_dir).shards_written == []
