"""The base-model generator on its real path: Gemma 3 270M (bundled: gemma3-270m) served by
llama.cpp, completion prompts built from the shipped example sentences."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from raysynth.generate.config import GenerateConfig
from raysynth.generate.stage import generate
from raysynth.llm.config import LocalBackend, model_name
from tests.generate.conftest import recipe_dict


def test_gemma_continues_the_examples_into_notes(ray_session, request, tmp_path):
    examples = request.config.rootpath / "jobs/configs/recipes/examples/pubmed_sentences.txt"
    recipe = recipe_dict(
        tmp_path,
        num_notes=4,
        template="sentence_examples_v1",
        prompt_style="completion",
        examples=str(examples),
        min_chars=10,
        sampling={"max_tokens": 32, "temperature": 0.7, "stop": ["\n"]},
    )
    backend = LocalBackend(bundled="gemma3-270m", max_in_flight=2, batch_size=2)
    config = GenerateConfig(recipe=recipe, backend=backend, shard_rows=4).resolved(tmp_path)
    result = generate(config, tmp_path / "run")

    notes = pq.read_table(result.notes_dir / "shard-00000.parquet").to_pylist()
    assert result.counts["rows"] == 4 and result.counts["failed"] == 0
    assert result.counts["ok"] >= 2, [n["text"] for n in notes]
    for note in notes:
        assert json.loads(note["generator"])["model"] == model_name(backend)
        text = note["text"] or ""
        assert "\n" not in text and "Keywords:" not in text  # one sentence, cut at the stop
    (log,) = (tmp_path / "run" / "logs").glob("llama-server-*.log")
    served = log.read_text(errors="replace")
    assert "gemma-3-270m" in served and "POST /v1/completions" in served


def test_the_default_model_is_left_out_of_dumps():
    """Run digests dump the backend: the field added for Gemma must not change SmolLM2's."""
    assert "bundled" not in LocalBackend().model_dump()
    assert LocalBackend(bundled="gemma3-270m").model_dump()["bundled"] == "gemma3-270m"
