"""The annotate stage end to end on the real llama.cpp server with SmolLM2, and the guards
that act before any request."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from raysynth.annotate.config import AnnotateConfig
from raysynth.annotate.job import annotate_run
from raysynth.cli import main
from raysynth.errors import ConfigError
from raysynth.schema import NOTES

NOTES_ROWS = [
    ("n1", "The patient with asthma was given salbutamol.", [(17, 23, "Disease")], "ok"),
    ("n2", "Type 2 diabetes was treated with metformin.", [(0, 15, "Disease")], "ok"),
    ("n3", "He has chronic gout and mild anemia.", [(15, 19, "Disease")], "ok"),
    ("n4", "A short note.", [], "removed"),
    ("n5", "No complaints today; follow-up in a month.", [], "ok"),
    ("n6", None, [], "failed"),
]


def write_notes(run_dir: Path, note_rows: list[tuple] = NOTES_ROWS) -> None:
    """Two shards of generated notes as the generate stage writes them (seeds located)."""
    notes = run_dir / "generate" / "notes"
    notes.mkdir(parents=True)
    half = len(note_rows) // 2
    for shard, rows in enumerate((note_rows[:half], note_rows[half:])):
        table = [
            {
                "note_id": nid,
                "text": text,
                "entities": [
                    {"start": s, "end": e, "label": lab, "text": text[s:e], "source": "seed"}
                    for s, e, lab in seeds
                ],
                "status": status,
                "reason": None if status == "ok" else f"{status} by the test",
            }
            for nid, text, seeds, status in rows
        ]
        pq.write_table(
            pa.Table.from_pylist(table, schema=NOTES), notes / f"shard-{shard:05d}.parquet"
        )


def config(server, tmp_path: Path, **extra) -> AnnotateConfig:
    lexicon = tmp_path / "diseases.txt"
    lexicon.write_text("asthma\nanemia\nchronic gout\n", encoding="utf-8")
    data = {
        "labels": {"Disease": "a disease, disorder or syndrome"},
        "backend": server.endpoint.model_dump(mode="json"),
        "strategies": [
            {"format": "json", "kb_in_prompt": True, "max_tokens": 96},
            {"format": "inline", "max_tokens": 96},
        ],
        "kb": {"lexicons": {"Disease": [{"path": str(lexicon)}]}},
        **extra,
    }
    return AnnotateConfig.model_validate(data)


def requests_served(server) -> int:
    return Path(server.log_path).read_text(errors="replace").count("POST /v1/chat/completions")


def test_annotate_notes_end_to_end(ray_session, llama_server, tmp_path):
    run_dir = tmp_path / "run"
    write_notes(run_dir)
    cfg = config(llama_server, tmp_path)
    before = requests_served(llama_server)
    result = annotate_run(cfg, run_dir)
    served = requests_served(llama_server) - before

    c = result.counts
    assert (c["rows"], c["ok"] + c["quarantined"]) == (6, 6)
    assert c["answers"] == 8  # 4 usable notes x 2 strategies
    assert served <= 8  # no request for the notes generate did not keep
    table = pq.read_table(run_dir / "annotations").to_pylist()
    assert sorted(r["note_id"] for r in table) == ["n1", "n2", "n3", "n4", "n5", "n6"]
    by_id = {r["note_id"]: r for r in table}
    assert by_id["n4"]["status"] == "quarantined"
    assert by_id["n4"]["reason"] == "note removed: removed by the test"
    assert by_id["n6"]["reason"].startswith("note failed")
    for row in table:
        for e in row["entities"]:
            assert row["text"][e["start"] : e["end"]] == e["text"]
            assert set(e["source"].split("+")) <= {"seed", "llm", "kb"}
    # Seeds and dictionary terms are labels whatever the small model answered.
    asthma = [e for e in by_id["n1"]["entities"] if e["text"] == "asthma"]
    if by_id["n1"]["status"] == "ok":
        assert asthma and {"seed", "kb"} <= set(asthma[0]["source"].split("+"))
    annotator = json.loads(table[0]["annotator"])
    assert [s["name"] for s in annotator["strategies"]] == ["json-zero-kb", "inline-zero"]
    assert all(len(s["prompt_version"]) == 12 for s in annotator["strategies"])
    shards = json.loads(result.summary_path.read_text())
    assert shards["rows"] == 6

    # Resume: a lost shard is redone from the response cache, without a request.
    (run_dir / "annotations" / "shard-00001.parquet").unlink()
    before = requests_served(llama_server)
    again = annotate_run(cfg, run_dir)
    assert (again.shards_written, again.shards_skipped) == (["shard-00001.parquet"],
                                                            ["shard-00000.parquet"])  # fmt: skip
    assert requests_served(llama_server) == before
    assert again.counts["rows"] == 6

    # Another annotator config must not be mixed into the same folder.
    other = cfg.model_copy(update={"occurrences": "first"})
    with pytest.raises(ConfigError, match="another annotator config"):
        annotate_run(other, run_dir)
    # Nor another dictionary: the same lexicon path, edited in place.
    with open(tmp_path / "diseases.txt", "a", encoding="utf-8") as lexicon:
        lexicon.write("asthma attack\n")
    with pytest.raises(ConfigError, match="another annotator config"):
        annotate_run(cfg, run_dir)


def test_an_annotator_without_llm_spans_asks_nothing(ray_session, llama_server, tmp_path):
    run_dir = tmp_path / "run"
    write_notes(run_dir)
    # A window ends with its first shard written: the two shards run as two executions.
    cfg = config(llama_server, tmp_path, merge={"sources": ["seed", "kb"]}, window_minutes=1e-9)
    before = requests_served(llama_server)
    windows = []
    result = annotate_run(cfg, run_dir, on_shard=lambda s: windows.append(s["window"]))

    assert requests_served(llama_server) == before
    assert windows == [1, 2]
    c = result.counts
    assert (c["rows"], c["ok"], c["answers"], c["failed_answers"]) == (6, 4, 0, 0)
    by_id = {r["note_id"]: r for r in pq.read_table(run_dir / "annotations").to_pylist()}
    labels = {
        nid: sorted((e["text"], e["source"]) for e in r["entities"]) for nid, r in by_id.items()
    }
    assert labels["n1"] == [("asthma", "seed+kb")]
    assert labels["n3"] == [("anemia", "kb"), ("chronic gout", "kb")]  # the longest of overlaps
    assert by_id["n5"]["status"] == "ok" and not labels["n5"]


def test_defined_abbreviations_take_their_long_forms_label(ray_session, llama_server, tmp_path):
    text = "Huntington disease (HD) is dominant; in HD the onset is late. HDL was normal."
    rows = [("a1", text, [(0, 18, "Disease")], "ok"), *NOTES_ROWS[:1]]
    write_notes(tmp_path / "run", rows)
    merge = {"sources": ["seed", "kb"], "abbreviations": True}
    annotate_run(config(llama_server, tmp_path, merge=merge), tmp_path / "run")

    by_id = {r["note_id"]: r for r in pq.read_table(tmp_path / "run" / "annotations").to_pylist()}
    labels = [(e["text"], e["source"]) for e in by_id["a1"]["entities"]]
    assert labels == [
        ("Huntington disease", "seed"),
        ("HD", "abbreviation"),
        ("HD", "abbreviation"),
    ]
    assert [e["text"] for e in by_id["n1"]["entities"]] == ["asthma"]
    assert json.loads(by_id["a1"]["annotator"])["merge"]["abbreviations"] is True


def test_annotate_with_mention_replacement(ray_session, llama_server, tmp_path):
    run_dir = tmp_path / "run"
    write_notes(run_dir)
    strategies = [{"format": "json", "max_tokens": 48}]
    cfg = config(llama_server, tmp_path, strategies=strategies, augment={"copies": 2})
    result = annotate_run(cfg, run_dir)

    table = pq.read_table(run_dir / "annotations").to_pylist()
    originals = {r["note_id"]: r for r in table if "~r" not in r["note_id"]}
    copies = [r for r in table if "~r" in r["note_id"]]
    copied = sorted(n for n, r in originals.items() if r["status"] == "ok" and r["entities"])
    assert copied  # the seeds alone make n1-n3 ok with entities
    assert sorted(r["note_id"] for r in copies) == [f"{n}~r{k}" for n in copied for k in (1, 2)]
    c = result.counts
    assert (c["augmented"], c["rows"]) == (len(copies), 6 + len(copies))
    assert c["ok"] == sum(r["status"] == "ok" for r in table)
    for copy in copies:
        assert copy["entities"] and {e["source"] for e in copy["entities"]} == {"replaced"}
        for e in copy["entities"]:
            assert copy["text"][e["start"] : e["end"]] == e["text"]
    assert json.loads(table[0]["annotator"])["augment"]["copies"] == 2


def test_privacy_guard_refuses_real_text_for_a_remote_endpoint(tmp_path, shared_data):
    corpus = shared_data / "ncbi_disease" / "conll" / "devel.tsv"
    remote = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "gpt"}
    cfg = AnnotateConfig.model_validate(
        {"labels": {"Disease": "a disease"}, "backend": remote, "input": {"path": str(corpus)}}
    )
    with pytest.raises(ConfigError, match="real text.*not local"):
        annotate_run(cfg, tmp_path / "run")  # fails before Ray or any request is needed
    assert not (tmp_path / "run" / "annotations").exists()
    allowed = cfg.model_copy(update={"allow_real_text": True})
    from raysynth.annotate.config import check_privacy

    check_privacy(allowed, real_text=True, what="x")  # the explicit opt-in passes
    check_privacy(cfg, real_text=False, what="x")  # synthetic notes may go anywhere


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"strategies.0.shots: knn needs `examples`"):
        AnnotateConfig.model_validate({"labels": {"D": "d"}, "strategies": [{"shots": "knn"}]})
    with pytest.raises(ValueError, match="kb_in_prompt: needs a `kb` section"):
        AnnotateConfig.model_validate(
            {"labels": {"D": "d"}, "strategies": [{"kb_in_prompt": True}]}
        )


def test_annotator_evaluation_on_gold_text_with_knn(ray_session, llama_server, tmp_path,
                                                     shared_data):  # fmt: skip
    """`raysynth annotate --gold`: real sentences, two strategies, one scored row each."""
    ncbi = shared_data / "ncbi_disease" / "conll"
    cfg = {
        "name": "gold",
        "storage": str(tmp_path),
        "annotate": {
            "labels": {"Disease": "a disease, disorder or syndrome"},
            "backend": llama_server.endpoint.model_dump(mode="json"),
            "strategies": [
                {"format": "json", "max_tokens": 64},
                {"format": "json", "shots": "knn", "k": 2, "max_tokens": 64},
            ],
            "examples": {"path": str(ncbi / "train.tsv")},
            "examples_limit": 100,
        },
    }
    path = tmp_path / "gold.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["annotate", str(path), "--gold", str(ncbi / "devel.tsv"), "--limit", "4"]) == 0
    rows = json.loads((tmp_path / "gold" / "annotator-eval" / "results.json").read_text())
    assert [r["strategy"] for r in rows] == ["json-zero", "json-knn"]
    for row in rows:
        assert 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["hallucination_rate"] <= 1.0
    knn_prompt_cache = list((tmp_path / "gold" / "llm-cache").rglob("*"))
    assert knn_prompt_cache, "answers are cached"
