"""The endpoint-wide rate limiter against the real llama.cpp server: the request rate seen at
the server, over a 30 s window, stays within the limit plus one burst and reaches 90% of it."""

from __future__ import annotations

from raysynth.llm import OpenAIBackend, SamplingParams, llm_stage, summarize

LIMIT_PER_MIN = 120
WINDOW_S = 30.0
ROWS = 64  # a little more than the window holds, so the window is full


def test_four_actors_share_one_request_limit(ray_session, llama_server, fake_endpoint):
    proxy = fake_endpoint(upstream=llama_server.base_url)  # records arrival times
    backend = OpenAIBackend(
        base_url=proxy.base_url,
        model=llama_server.endpoint.model,
        api_key_env=None,
        concurrency=4,
        max_in_flight=16,
        batch_size=4,
        requests_per_minute=LIMIT_PER_MIN,
        burst_seconds=1.0,
    )
    # Completion prompts of a few tokens: the server must keep up with the limit even on a
    # busy 2-core machine, or its queue, not the limiter, would set the pace.
    rows = [{"request_id": f"r{i}", "prompt": f"row-{i}: hi"} for i in range(ROWS)]
    requests = ray_session.data.from_items(rows, override_num_blocks=16)
    with llm_stage(backend, sampling=SamplingParams(max_tokens=1)) as stage:
        out = stage(requests).materialize()
    assert summarize(out).ok == ROWS

    arrivals = sorted(c.at for c in proxy.calls)
    assert len(arrivals) == ROWS
    limit = LIMIT_PER_MIN * WINDOW_S / 60
    burst = LIMIT_PER_MIN / 60 * backend.burst_seconds
    busiest = max(sum(1 for t in arrivals if s <= t < s + WINDOW_S) for s in arrivals)
    first_window = sum(1 for t in arrivals if t < arrivals[0] + WINDOW_S)
    figures = f"busiest 30 s: {busiest}, first 30 s: {first_window}, limit {limit:.0f}"
    assert busiest <= limit + burst, figures
    assert first_window >= 0.9 * limit, figures
