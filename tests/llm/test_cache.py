"""The response cache: a rerun over the same rows makes no call at all."""

from __future__ import annotations

from llm_fakes import chat_rows

from raysynth.llm import OpenAIBackend, llm_stage, summarize


def test_second_run_makes_zero_http_calls(ray_session, fake_endpoint, tmp_path):
    server = fake_endpoint()
    backend = OpenAIBackend(
        base_url=server.base_url, model="fake", api_key_env=None, concurrency=2, batch_size=4
    )
    rows = chat_rows(12)
    cache_dir = tmp_path / "llm-cache"

    with llm_stage(backend, cache_dir=cache_dir) as stage:
        first = stage(ray_session.data.from_items(rows)).materialize()
    assert len(server.calls) == 12
    assert summarize(first).cached == 0

    with llm_stage(backend, cache_dir=cache_dir) as stage:
        second = stage(ray_session.data.from_items(rows)).materialize()
    assert len(server.calls) == 12, "the rerun called the endpoint"

    summary = summarize(second)
    assert (summary.ok, summary.cached) == (12, 12)
    assert summary.prompt_tokens == 12 * 7  # usage is replayed from the cache
    answers = {r["request_id"]: r["response"] for r in second.take_all()}
    assert answers == {f"note-{i:03d}": f"answer for row-{i}" for i in range(12)}
