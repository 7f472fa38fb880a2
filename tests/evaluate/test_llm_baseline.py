"""`raysynth evaluate --llm`: the annotator applied to real text, reported like a model."""

from __future__ import annotations

import json

import yaml

from raysynth.cli import main


def test_llm_baseline_report_matches_the_annotator_scores(
    ray_session, llama_server, shared_data, tmp_path
):
    blocks = (shared_data / "ncbi_disease/conll/devel.tsv").read_text().split("\n\n")[:6]
    sample = tmp_path / "dev.tsv"
    sample.write_text("\n\n".join(blocks) + "\n\n")
    config = {
        "name": "llm",
        "storage": str(tmp_path),
        "test_sets": [{"name": "dev", "path": str(sample)}],
        "annotate": {
            "labels": {"Disease": "a disease, disorder or syndrome"},
            "backend": llama_server.endpoint.model_dump(mode="json"),
            "strategies": [{"format": "json", "max_tokens": 64}],
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["evaluate", "--llm", str(path), "--limit", "4"]) == 0

    report = json.loads((tmp_path / "llm/report/dev-llm-json-zero/report.json").read_text())
    assert report["documents"]["total"] == 4
    assert report["annotator"] == "json-zero"
    eval_rows = json.loads(
        (tmp_path / "llm/llm-baseline/dev/annotator-eval/results.json").read_text()
    )
    # Two scoring paths (annotator evaluation, model report) agree on the same spans.
    strict = report["scores"]["seqeval_strict"]["overall"]
    assert round(strict["f1"], 4) == eval_rows[0]["f1"]
    assert round(strict["precision"], 4) == eval_rows[0]["precision"]
