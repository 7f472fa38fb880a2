"""`raysynth run` on a small config: every stage on CPU with the real llama.cpp server and a
tiny model, a manifest whose counts reconcile, and a rerun that redoes nothing. The run is
stored at a URI (pyarrow's file://), so the rerun starts from an empty working copy, as a new
driver on another machine would."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import yaml

from raysynth.config import load_config
from raysynth.pipeline import run
from tests.generate.conftest import recipe_dict
from tests.helpers import write_easy_corpus


def small_config(tmp_path, llama_server, tiny_bert) -> dict:
    lexicons = tmp_path / "lexicons"
    lexicons.mkdir()
    recipe = recipe_dict(lexicons, num_notes=8, template="sentence_v1", min_chars=10,
                         sampling={"max_tokens": 32, "temperature": 0.7})  # fmt: skip
    backend = llama_server.endpoint.model_dump(mode="json") | {"max_in_flight": 2}
    test = write_easy_corpus(tmp_path / "test.tsv", 30, seed=3)
    return {
        "name": "small",
        "storage": f"file://{tmp_path}/remote",
        "work_dir": str(tmp_path / "work"),
        "test_sets": [{"name": "easy", "path": str(test), "label_map": "Disease=DISEASE"}],
        "generate": {"recipe": recipe, "backend": backend, "shard_rows": 4},
        "annotate": {
            "labels": {"DISEASE": "a disease", "DRUG": "a medication"},
            "backend": backend,
            "strategies": [{"format": "json", "max_tokens": 64}],
            "kb": {
                "lexicons": {
                    "DISEASE": [{"path": str(lexicons / "diseases.txt")}],
                    "DRUG": [{"path": str(lexicons / "drugs.tsv")}],
                }
            },
        },
        "train": {
            "labels": ["DISEASE", "DRUG"],
            "model": str(tiny_bert),
            "epochs": 1,
            "num_workers": 1,
            "batch_size": 4,
            "dev_fraction": 0.5,  # 4 of the 8 notes: one quarantined note leaves dev non-empty
            "max_length": 64,
            "stride": 16,
        },
        "evaluate": {"actors": 1, "bootstrap": 20},
    }


def test_run_writes_every_table_and_a_rerun_redoes_nothing(
    ray_session, llama_server, tiny_bert, tmp_path
):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small_config(tmp_path, llama_server, tiny_bert)))
    config = load_config(path)
    result = run(config)
    stored = tmp_path / "remote" / "small"
    assert result.storage.remote == f"file://{stored}"
    assert result.run_dir == tmp_path / "work" / "small"

    statuses = {s.name: s.status for s in result.stages}
    assert statuses == {
        **dict.fromkeys(["data", "generate", "annotate", "train", "evaluate"], "done"),
        "self-train": "skipped",
    }
    notes = pq.read_table(stored / "generate" / "notes").to_pylist()
    annotations = pq.read_table(stored / "annotations").to_pylist()
    assert len(notes) == 8 and len(annotations) == 8
    assert sorted(n["note_id"] for n in notes) == sorted(a["note_id"] for a in annotations)
    assert (stored / "model" / "config.json").is_file()
    assert (stored / "report" / "easy" / "report.json").is_file()
    # Written by workers straight to the storage, never to the working copy:
    for folder in ("llm-cache", "checkpoints", "predictions/easy"):
        assert any(p.is_file() for p in (stored / folder).rglob("*")), folder
        assert not (result.run_dir / folder).exists(), folder

    manifest = json.loads((stored / "manifest.json").read_text())
    assert len(manifest["config_sha256"]) == 64 and manifest["versions"]["ray"]
    counts = {s["name"]: s["counts"] for s in manifest["stages"]}
    g, a, t, e = (counts[n] for n in ("generate", "annotate", "train", "evaluate"))
    assert g["rows"] == g["ok"] + g["failed"] + g["removed"] == 8
    assert g["prompt_tokens"] > 0 and g["completion_tokens"] > 0
    assert a["rows"] == a["ok"] + a["quarantined"] == 8
    assert a["quarantined"] >= g["failed"] + g["removed"]  # notes generation did not keep
    assert t["rows"] == 8 and t["ok"] == a["ok"] == t["train_documents"] + t["dev_documents"]
    assert e["easy_rows"] == e["easy_used"] == e["easy_scored"] == 30

    shutil.rmtree(result.run_dir)  # a new driver: everything comes from the storage
    again = run(config)
    details = {s.name: (s.status, s.detail) for s in again.stages}
    assert "0 shards written, 2 skipped" in details["generate"][1]
    assert "0 shards written, 2 skipped" in details["annotate"][1]
    assert details["train"] == ("skipped", "already done with this config and data")
    assert details["evaluate"] == ("skipped", "already done with this config and model")
