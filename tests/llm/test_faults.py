"""Failure handling of the HTTP stage against a loopback server that fails on purpose."""

from __future__ import annotations

from llm_fakes import chat_rows

from raysynth.llm import OpenAIBackend, SamplingParams, llm_stage, summarize

# Row i gets PATTERN[i % 8]; "x-then-ok" fails on the first attempt only.
PATTERN = (
    "ok",
    "429-then-ok",
    "500-then-ok",
    "500",
    "hang-then-ok",
    "malformed",
    "400",
    "drop-then-ok",
)
ROWS = 24
MAX_RETRIES = 2
RETRY_AFTER_S = 3
# What each kind of row must end as, and how many calls it must have cost.
EXPECTED = {
    "ok": ("ok", None, 1),
    "429-then-ok": ("ok", None, 2),
    "500-then-ok": ("ok", None, 2),
    "500": ("error", "HTTP 500 after 3 attempts", 3),
    "hang-then-ok": ("ok", None, 2),
    "malformed": ("error", "malformed response after 3 attempts", 3),
    "400": ("error", "HTTP 400 (not retried)", 1),
    "drop-then-ok": ("ok", None, 2),
}


def plan(row: int, attempt: int) -> str:
    kind = PATTERN[row % len(PATTERN)]
    first, _, then = kind.partition("-then-")
    return first if attempt == 1 or not then else then


def test_every_row_ends_ok_or_with_a_reason(ray_session, fake_endpoint, tmp_path):
    server = fake_endpoint(plan=plan, retry_after_s=RETRY_AFTER_S, hang_s=3.0)
    backend = OpenAIBackend(
        base_url=server.base_url,
        model="fake",
        api_key_env=None,
        concurrency=3,
        max_in_flight=4,
        batch_size=2,
        timeout_s=1.0,
        max_retries=MAX_RETRIES,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
    )
    with llm_stage(backend, sampling=SamplingParams(max_tokens=8)) as stage:
        out = stage(ray_session.data.from_items(chat_rows(ROWS))).materialize()

    rows = {r["request_id"]: r for r in out.take_all()}
    assert len(rows) == ROWS
    for i in range(ROWS):
        kind = PATTERN[i % len(PATTERN)]
        status, reason, calls = EXPECTED[kind]
        row = rows[f"note-{i:03d}"]
        assert (row["llm_status"], row["llm_error"]) == (status, reason), kind
        assert len(server.calls_of(i)) == calls, kind
        if status == "ok":
            assert row["response"] == f"answer for row-{i}"
            assert row["usage"] == {"prompt_tokens": 7, "completion_tokens": 3}
        else:
            assert row["response"] is None

    summary = summarize(out)
    assert summary.reconciles
    assert (summary.rows, summary.ok, summary.error) == (ROWS, 15, 9)
    assert summary.prompt_tokens == 15 * 7


def test_retry_after_pauses_every_actor(ray_session, fake_endpoint):
    """A steady flow of requests (paced by the limiter) meets one 429 with Retry-After: no
    actor sends anything until the pause is over, bar requests already on the wire when the
    429 left (allowed `grace_s` to arrive), and the flow resumes after it."""
    grace_s = 0.5
    server = fake_endpoint(
        plan=lambda row, attempt: "429" if (row, attempt) == (2, 1) else "ok",
        retry_after_s=RETRY_AFTER_S,
    )
    backend = OpenAIBackend(
        base_url=server.base_url,
        model="fake",
        api_key_env=None,
        concurrency=3,
        max_in_flight=4,
        batch_size=2,
        requests_per_minute=300,
        max_retries=MAX_RETRIES,
    )
    with llm_stage(backend) as stage:
        out = stage(ray_session.data.from_items(chat_rows(16))).materialize()

    assert summarize(out).ok == 16
    (start,) = [c.at for c in server.calls if c.action == "429"]
    inside = [c for c in server.calls if start + grace_s < c.at < start + RETRY_AFTER_S - 0.1]
    assert inside == [], f"{len(inside)} request(s) sent during the Retry-After pause"
    assert sum(c.at >= start + RETRY_AFTER_S - 0.1 for c in server.calls) >= 5


def test_a_batch_slower_than_ray_data_no_progress_timeout_still_completes(
    ray_session, fake_endpoint
):
    """Nothing leaves the stage until a batch is answered; Ray Data's no-progress timeout
    (30 min by default, 2 s here) must not abort a slow but healthy endpoint."""
    server = fake_endpoint(plan=lambda row, attempt: "hang", hang_s=5.0)
    backend = OpenAIBackend(
        base_url=server.base_url, model="fake", api_key_env=None, batch_size=2, timeout_s=30.0
    )
    context = ray_session.data.DataContext.get_current()
    default = context.execution_no_progress_timeout_s
    context.execution_no_progress_timeout_s = 2
    try:
        with llm_stage(backend, sampling=SamplingParams(max_tokens=8)) as stage:
            out = stage(ray_session.data.from_items(chat_rows(2))).take_all()
    finally:
        context.execution_no_progress_timeout_s = default
    assert [r["llm_status"] for r in out] == ["ok", "ok"]
