"""The HTTP path: Ray Data actors calling an OpenAI-compatible endpoint.

Each actor keeps many requests in flight with `openai.AsyncOpenAI` (its own retries off: the
loop here retries, because it must also consult the endpoint-wide limiter and pause every
actor on a 429). A row whose call still fails after the configured retries becomes data, an
`error` status with a reason, and the job goes on. Reasons are built from status codes and
error kinds only, never from a response body, which may echo the request's text.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
from pydantic import SecretStr, ValidationError

from raysynth.llm.cache import ResponseCache, cache_key
from raysynth.llm.config import OpenAIBackend, SamplingParams
from raysynth.llm.ratelimit import wait_turn
from raysynth.llm.results import error_result, ok_result, with_results

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class MalformedResponse(Exception):
    """The endpoint answered 200 with something that is not a usable completion."""


@dataclass(frozen=True)
class Failure:
    """What went wrong with one attempt, in words safe to store next to a note."""

    reason: str
    retryable: bool
    retry_after: float | None = None


def classify(err: BaseException) -> Failure:
    """Map an exception from one call to a reason and whether retrying can help: 429, 408,
    409, 5xx, timeouts, dropped connections and malformed bodies can; other 4xx cannot."""
    import openai

    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        retryable = status in (408, 409, 429) or status >= 500
        return Failure(f"HTTP {status}", retryable, _retry_after(err.response.headers))
    if isinstance(err, openai.APITimeoutError):
        return Failure("timeout", True)
    if isinstance(err, openai.APIConnectionError):
        return Failure("connection error", True)
    if isinstance(err, (MalformedResponse, openai.APIResponseValidationError, ValueError)):
        return Failure("malformed response", True)
    return Failure(f"unexpected {type(err).__name__}", False)


def _retry_after(headers: Any) -> float | None:
    """Seconds from `Retry-After` (or `retry-after-ms`); None when absent or an HTTP date."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None


def build_request(
    row: dict[str, Any], backend: OpenAIBackend, sampling: SamplingParams
) -> tuple[str, dict]:
    """(`chat` or `completion`, request body) for one row; ValueError names a bad field."""
    try:
        params = sampling.for_row(row)
    except ValidationError as err:
        fields = ", ".join(str(e["loc"][0]) for e in err.errors() if e["loc"])
        raise ValueError(f"invalid sampling value in column(s) {fields}") from None
    body: dict[str, Any] = {
        "model": backend.model,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if row.get("messages"):
        body["messages"] = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        if params.response_format != "text":
            body["response_format"] = response_format(params, backend.schema_style)
        return "chat", body
    if row.get("prompt"):
        body["prompt"] = row["prompt"]
        return "completion", body
    raise ValueError("row has neither messages nor prompt")


def response_format(params: SamplingParams, style: str) -> dict[str, Any]:
    """The request's `response_format` in the dialect the server speaks (OpenAIBackend
    .schema_style)."""
    if params.response_format == "json_object" or params.json_schema is None:
        return {"type": "json_object"}
    if style == "json_object":
        return {"type": "json_object", "schema": params.json_schema}
    schema = {"name": "answer", "schema": params.json_schema, "strict": True}
    return {"type": "json_schema", "json_schema": schema}


def estimate_tokens(body: dict[str, Any]) -> int:
    """Tokens to reserve before a call: about 4 characters a token for the prompt, plus the
    completion limit. `settle` corrects it with the reported usage."""
    text = json.dumps(body.get("messages") or body.get("prompt") or "", ensure_ascii=False)
    return len(text) // 4 + body["max_tokens"]


def _parse(kind: str, response: Any) -> tuple[str, int | None, int | None]:
    try:
        choice = response.choices[0]
        text = choice.message.content if kind == "chat" else choice.text
    except (AttributeError, IndexError, TypeError):
        raise MalformedResponse from None
    if not isinstance(text, str):
        raise MalformedResponse
    usage = getattr(response, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    return text, prompt, completion


class OpenAIStage:
    """Ray Data actor-pool stage: `__call__` takes a pyarrow batch with the row contract of
    `raysynth.llm.builder.llm_stage` and returns it with the result columns added.

    Constructor arguments are what the actor needs and nothing it could leak: the key arrives
    as a SecretStr (masked in any repr), read from the environment by the driver.
    """

    def __init__(
        self,
        backend: OpenAIBackend,
        sampling: SamplingParams,
        api_key: SecretStr | None,
        limiter: Any,
        cache_root: str | None,
        cache_scope: str,
    ) -> None:
        self._backend = backend
        self._sampling = sampling
        self._api_key = api_key
        self._limiter = limiter
        self._cache = ResponseCache(cache_root) if cache_root else None
        self._cache_scope = cache_scope
        self._client: Any = None
        self._in_flight: asyncio.Semaphore | None = None

    def _connect(self) -> Any:
        """The client, made on first use inside the event loop Ray Data runs us on."""
        import openai

        if self._client is None:
            # Proxies from the environment must not see loopback traffic.
            loopback = urlparse(self._backend.base_url).hostname in LOOPBACK_HOSTS
            self._client = openai.AsyncOpenAI(
                base_url=self._backend.base_url,
                api_key=self._api_key.get_secret_value() if self._api_key else "unused",
                max_retries=0,
                timeout=self._backend.timeout_s,
                http_client=openai.DefaultAsyncHttpxClient(trust_env=not loopback),
            )
            self._in_flight = asyncio.Semaphore(self._backend.max_in_flight)
        return self._client

    async def __call__(self, batch: pa.Table) -> pa.Table:
        self._connect()
        rows = batch.to_pylist()
        results = await asyncio.gather(*(self._row(row) for row in rows))
        return with_results(batch, results)

    async def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        try:
            kind, body = build_request(row, self._backend, self._sampling)
        except ValueError as err:
            return error_result(str(err))
        key = cache_key(self._cache_scope, self._backend.model, {"kind": kind, **body})
        if self._cache is not None:
            hit = await asyncio.to_thread(self._cache.get, key)
            if hit is not None:
                return ok_result(hit["response"], **hit["usage"], cached=True)
        async with self._in_flight:
            try:
                text, prompt, completion = await self._with_retries(kind, body)
            except Exception as err:  # every failure becomes the row's status, never a crash
                return error_result(self._final_reason(err))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        if self._cache is not None:
            await asyncio.to_thread(self._cache.put, key, {"response": text, "usage": usage})
        return ok_result(text, **usage, cached=False)

    async def _with_retries(self, kind: str, body: dict) -> tuple[str, int | None, int | None]:
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._backend.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda err: classify(err).retryable),
            reraise=True,
        )
        return await retrying(self._attempt, kind, body)

    def _wait(self, state: Any) -> float:
        """Exponential backoff with jitter; none after a 429 with Retry-After, whose pause the
        limiter already imposes on every actor."""
        from tenacity import wait_exponential_jitter

        if classify(state.outcome.exception()).retry_after is not None:
            return 0.0
        backoff = wait_exponential_jitter(
            initial=self._backend.backoff_initial_s,
            max=self._backend.backoff_max_s,
            jitter=self._backend.backoff_initial_s,
        )
        return backoff(state)

    async def _attempt(self, kind: str, body: dict) -> tuple[str, int | None, int | None]:
        estimate = estimate_tokens(body)
        await wait_turn(self._limiter, estimate)
        try:
            if kind == "chat":
                response = await self._client.chat.completions.create(**body)
            else:
                response = await self._client.completions.create(**body)
        except Exception as err:
            retry_after = classify(err).retry_after
            if retry_after is not None:
                await self._limiter.pause.remote(retry_after)
            raise
        text, prompt, completion = _parse(kind, response)
        used = estimate if prompt is None or completion is None else prompt + completion
        await self._limiter.settle.remote(estimate, used)
        return text, prompt, completion

    def _final_reason(self, err: BaseException) -> str:
        failure = classify(err)
        if not failure.retryable:
            return f"{failure.reason} (not retried)"
        return f"{failure.reason} after {self._backend.max_retries + 1} attempts"
