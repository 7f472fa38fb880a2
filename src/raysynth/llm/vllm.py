"""The vLLM path: `ray.data.llm.build_processor` with `vLLMEngineProcessorConfig`.

Ray's processor runs chat templating, tokenizing, the engine and detokenizing as actor-pool
stages, and with `should_continue_on_error` turns a failed row into an `__inference_error__`
instead of a crash. Its stages write their own columns (`prompt`, `request_id`, ...) into the
row, so the input row is kept whole (pickled) under one private key and restored at the end,
then the engine's outputs are mapped onto the stage's result columns.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from raysynth.llm.config import SamplingParams, VllmBackend
from raysynth.llm.results import error_result, ok_result

ROW_KEY = "_raysynth_row"
BAD_ROW_KEY = "_raysynth_bad_row"
ERROR_KEY = "__inference_error__"
PLACEHOLDER = "."
# Without a KV cache size, vLLM on CPU reserves 92% of the machine's memory and refuses to
# start when other processes hold some of it.
CPU_KV_CACHE_BYTES = 1 << 30
# Ray's CPU stages (chat template, tokenizer, detokenizer) default to one CPU each, which on a
# small machine leaves none for the engine; they are light, so a fraction is enough.
CPU_STAGE_SETTINGS = {"num_cpus": 0.25, "concurrency": 1}
MAX_REASON_CHARS = 300


def processor_config(backend: VllmBackend) -> Any:
    """The `vLLMEngineProcessorConfig` for `backend`, with DESIGN.md's CPU settings when
    `device` is cpu (a CPU placement group and no engine metrics, else Ray waits for a GPU)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    engine_kwargs: dict[str, Any] = dict(backend.engine_kwargs)
    settings: dict[str, Any] = {}
    if backend.device == "cpu":
        if "gpu_memory_utilization" not in engine_kwargs:
            engine_kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        settings = {
            "placement_group_config": {"bundles": [backend.resources or {"CPU": 1}]},
            "log_engine_metrics": False,
            "chat_template_stage": CPU_STAGE_SETTINGS,
            "tokenize_stage": CPU_STAGE_SETTINGS,
            "detokenize_stage": CPU_STAGE_SETTINGS,
        }
    elif backend.resources is not None:
        settings = {"placement_group_config": {"bundles": [backend.resources]}}
    if backend.prompt_format == "completion":
        settings["chat_template_stage"] = False
    return vLLMEngineProcessorConfig(
        model_source=backend.model_source,
        engine_kwargs=engine_kwargs,
        batch_size=backend.batch_size,
        concurrency=backend.replicas,
        should_continue_on_error=True,
        **settings,
    )


def vllm_stage(backend: VllmBackend, sampling: SamplingParams) -> Callable[[Any], Any]:
    """Dataset -> Dataset through vLLM engines; rows as in `builder.llm_stage`."""
    from ray.data.llm import build_processor

    processor = build_processor(
        processor_config(backend),
        preprocess=functools.partial(_preprocess, sampling=sampling, backend=backend),
        postprocess=_keep,
    )

    def stage(ds: Any) -> Any:
        return processor(ds).map(_finish)

    return stage


def sampling_params(params: SamplingParams) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop),
    }
    if params.response_format == "json_schema":
        # As a string: rows pass through Arrow, which would turn the schema's integers
        # (maxItems) into floats that vLLM's grammar compiler rejects.
        out["structured_outputs"] = {"json": json.dumps(params.json_schema)}
    elif params.response_format == "json_object":
        out["structured_outputs"] = {"json_object": True}
    return out


def _preprocess(row: dict[str, Any], sampling: SamplingParams, backend: VllmBackend) -> dict:
    """The engine's inputs for one row. A row that cannot be sent as it is (no text, a bad
    sampling value) still goes through as a one-token placeholder request, marked with
    BAD_ROW_KEY and turned into an error row at the end: Ray's stages skip rows marked with
    `__inference_error__`, and their outputs then lack columns the others have, which makes
    blocks with and without such rows fail to concatenate."""
    # Ray's engine stage writes an integer `request_id` into the row; ours (a string) is kept
    # in ROW_KEY and replaced here so the column has one type in every row.
    out: dict[str, Any] = {ROW_KEY: _pack(row), BAD_ROW_KEY: "", "request_id": -1}
    try:
        params = sampling.for_row(row)
    except ValidationError as err:
        fields = ", ".join(str(e["loc"][0]) for e in err.errors() if e["loc"])
        out[BAD_ROW_KEY] = f"invalid sampling value in column(s) {fields}"
        params = sampling
    messages, prompt = _as_list(row.get("messages")), row.get("prompt")
    if backend.prompt_format == "completion":
        out["prompt"] = prompt or PLACEHOLDER
        if not prompt:
            out[BAD_ROW_KEY] = out[BAD_ROW_KEY] or "row has no prompt (prompt_format completion)"
    else:
        if not messages and prompt:
            messages = [{"role": "user", "content": prompt}]
        out["messages"] = messages or [{"role": "user", "content": PLACEHOLDER}]
        if not messages:
            out[BAD_ROW_KEY] = out[BAD_ROW_KEY] or "row has neither messages nor prompt"
    if out[BAD_ROW_KEY]:
        params = sampling.model_copy(update={"max_tokens": 1})
    out["sampling_params"] = sampling_params(params)
    # Ray keeps the input columns beside these in its row struct; blanked, they have one
    # (null) type in every block whatever each input block held, and ROW_KEY restores them.
    out.update({key: None for key in row if key not in out})
    return out


def _pack(row: dict[str, Any]) -> bytes:
    """The input row as one opaque value: a nested struct would take each block's own schema
    of the input (a block without `prompt` values, say) and blocks would no longer
    concatenate; bytes have one type everywhere. Unpickled only by this job's own `_finish`."""
    return pickle.dumps(dict(row), protocol=pickle.HIGHEST_PROTOCOL)


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    return [{"role": m["role"], "content": m["content"]} for m in list(value)]


def _keep(row: dict[str, Any]) -> dict[str, Any]:
    return row


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    """The input row restored, with the stage's result columns."""
    out = pickle.loads(row[ROW_KEY])
    error = row.get(BAD_ROW_KEY) or row.get(ERROR_KEY) or ""
    if error:
        out.update(error_result(f"vLLM: {error[:MAX_REASON_CHARS]}"))
    else:
        out.update(
            ok_result(
                row["generated_text"],
                row.get("num_input_tokens"),
                row.get("num_generated_tokens"),
                cached=False,
            )
        )
    return out
