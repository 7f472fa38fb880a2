"""One way to turn a Ray Dataset of requests into a Ray Dataset of responses, whatever the
backend: `llm_stage`.

It is a context manager rather than a plain builder because some backends own resources that
must outlive the lazy dataset and be released after it ran: the local llama.cpp server and the
endpoint's rate-limiter actor. Starting them is the `with` statement's job, visible at the call
site, not a hidden side effect of building.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from raysynth.errors import ConfigError
from raysynth.llm.config import (
    Backend,
    LocalBackend,
    OpenAIBackend,
    SamplingParams,
    VllmBackend,
    model_name,
)

Stage = Callable[[Any], Any]  # ray.data.Dataset -> ray.data.Dataset


@contextlib.contextmanager
def llm_stage(
    backend: Backend,
    *,
    sampling: SamplingParams | None = None,
    cache_dir: str | Path | None = None,
    run_dir: str | Path | None = None,
) -> Iterator[Stage]:
    """Yield a Dataset -> Dataset stage that sends every row to the LLM `backend`.

    Run (write, materialize) the returned dataset inside the `with` block: the stage is lazy,
    and leaving the block stops the local server and the rate limiter it relies on.

    Input rows:
        request_id (str): the row's id, e.g. a note_id; kept as is.
        messages (list<{role, content}>) or prompt (str): what to send. `messages` goes to the
            chat endpoint, `prompt` to the completion endpoint (vLLM: see prompt_format).
        max_tokens, temperature, top_p, seed, response_format (optional, nullable): per-row
            overrides of `sampling` (ROW_SAMPLING_FIELDS of raysynth.llm.config).
        Any other column is carried through untouched.

    Output rows: every input column, plus
        response (str | null): the generated text; null on error.
        usage (struct<prompt_tokens: int64, completion_tokens: int64>): as reported by the
            backend (from the cache on a hit); nulls on error.
        llm_status (str): "ok" or "error". No row is ever dropped.
        llm_error (str | null): why the row failed (status code or error kind and attempts;
            never text from the row or the response).
        cached (bool): the response came from the cache, with no call made.

    `summarize(output)` gives the counts (rows = ok + error) and token totals.

    Args:
        backend: an OpenAIBackend, VllmBackend or LocalBackend.
        sampling: stage-wide sampling defaults.
        cache_dir: folder (local path or pyarrow URI such as s3://...) of the response cache
            of HTTP backends; None disables it. Typically `<run dir>/llm-cache`.
        run_dir: where the local server's log goes (required for `local`).
    """
    sampling = sampling or SamplingParams()
    if isinstance(backend, VllmBackend):
        from raysynth.llm.vllm import vllm_stage

        yield vllm_stage(backend, sampling)
    elif isinstance(backend, LocalBackend):
        from raysynth.llm.local_server import local_server

        if run_dir is None:
            raise ConfigError("run_dir: required by the local backend (for the server log)")
        with (
            local_server(backend, run_dir) as server,
            _http_stage(server.endpoint, sampling, cache_dir, local_cache_scope(backend)) as stage,
        ):
            yield stage
    else:
        with _http_stage(backend, sampling, cache_dir) as stage:
            yield stage


def api_key(backend: OpenAIBackend) -> SecretStr | None:
    """The key from the environment variable the config names; the error names the variable,
    never a value."""
    if backend.api_key_env is None:
        return None
    value = os.environ.get(backend.api_key_env)
    if not value:
        raise ConfigError(f"api_key_env: environment variable {backend.api_key_env} is not set")
    return SecretStr(value)


def local_cache_scope(backend: LocalBackend) -> str:
    """What the cached answers of a started llama.cpp server depend on: its model and
    context, not its port, which is a free one picked anew at each start (keyed by the URL,
    a rerun or a second annotator found none of the answers already paid for)."""
    return f"llama.cpp:{model_name(backend)}:n_ctx={backend.n_ctx}"


@contextlib.contextmanager
def _http_stage(
    backend: OpenAIBackend,
    sampling: SamplingParams,
    cache_dir: str | Path | None,
    cache_scope: str | None = None,
) -> Iterator[Stage]:
    """`cache_scope`: what cached answers are keyed by besides the request (default the
    endpoint's URL)."""
    import ray
    from ray.data import ActorPoolStrategy

    from raysynth.llm.http import OpenAIStage
    from raysynth.llm.ratelimit import limiter_actor

    key = api_key(backend)
    limiter = limiter_actor(
        backend.base_url,
        backend.requests_per_minute,
        backend.tokens_per_minute,
        backend.burst_seconds,
    )
    # A batch ends when its slowest row does; so that one slow row never idles the other
    # slots, each actor takes up to max_in_flight batches at once and its semaphore, not the
    # batching, bounds the requests in flight.
    compute = ActorPoolStrategy(
        size=backend.concurrency,
        max_concurrent_calls_per_actor=backend.max_in_flight,
        max_tasks_in_flight_per_actor=2 * backend.max_in_flight,
    )
    kwargs = dict(
        backend=backend,
        sampling=sampling,
        api_key=key,
        limiter=limiter,
        cache_root=str(cache_dir) if cache_dir is not None else None,
        cache_scope=cache_scope or backend.base_url,
    )

    def stage(ds: Any) -> Any:
        out = ds.map_batches(
            OpenAIStage,
            fn_constructor_kwargs=kwargs,
            batch_size=backend.batch_size,
            batch_format="pyarrow",
            compute=compute,
            num_cpus=backend.num_cpus,
        )
        # Nothing leaves the stage until a whole batch is answered, which on a busy or
        # rate-limited endpoint can outlast Ray Data's no-progress timeout (30 min) and
        # abort a healthy run; a request that hangs is bounded by timeout_s and max_retries.
        out.context.execution_no_progress_timeout_s = -1
        return out

    try:
        yield stage
    finally:
        ray.kill(limiter)
