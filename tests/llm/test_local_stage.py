"""The stage against the real llama.cpp server with SmolLM2-135M-Instruct."""

from __future__ import annotations

from llm_fakes import chat_rows

from raysynth.llm import LocalBackend, SamplingParams, llm_stage, summarize


def test_twenty_chat_requests_come_back_with_text_and_usage(ray_session, tmp_path):
    """Through the `local` backend: the stage starts its own server, logs in the run
    directory, and stops it when the block ends."""
    rows = chat_rows(20, "Name one symptom of a cold (request row-{i}).")
    rows[3]["max_tokens"] = 4  # a per-row override
    backend = LocalBackend(concurrency=2, max_in_flight=4, batch_size=4)
    with llm_stage(backend, sampling=SamplingParams(max_tokens=12), run_dir=tmp_path) as stage:
        out = stage(ray_session.data.from_items(rows)).materialize()

    results = {r["request_id"]: r for r in out.take_all()}
    assert sorted(results) == [f"note-{i:03d}" for i in range(20)]
    for row in results.values():
        assert row["llm_status"] == "ok", row["llm_error"]
        assert row["response"].strip()
        assert row["usage"]["prompt_tokens"] > 0
        assert 0 < row["usage"]["completion_tokens"] <= 12
        assert row["cached"] is False
    assert results["note-003"]["usage"]["completion_tokens"] <= 4
    assert results["note-003"]["max_tokens"] == 4  # input columns are kept

    summary = summarize(out)
    assert summary.reconciles and summary.ok == 20
    completions = [r["usage"]["completion_tokens"] for r in results.values()]
    assert summary.completion_tokens == sum(completions)
    (log,) = (tmp_path / "logs").glob("llama-server-*.log")
    assert log.stat().st_size > 0


def test_a_restarted_server_answers_from_the_cache(ray_session, tmp_path):
    """Each start picks a new free port: cached answers are keyed by the model, not the URL,
    so a rerun (or a second annotator asking the same) pays for no request again."""
    rows = chat_rows(4, "Name one disease (request row-{i}).")
    backend = LocalBackend(batch_size=4)
    runs = []
    for attempt in ("first", "second"):
        with llm_stage(
            backend, sampling=SamplingParams(max_tokens=8), cache_dir=tmp_path / "cache",
            run_dir=tmp_path / attempt,
        ) as stage:  # fmt: skip
            out = stage(ray_session.data.from_items(rows)).materialize().take_all()
        runs.append({r["request_id"]: r for r in out})
    first, second = runs
    assert not any(r["cached"] for r in first.values())
    assert all(r["cached"] for r in second.values())
    assert {k: r["response"] for k, r in second.items()} == {
        k: r["response"] for k, r in first.items()
    }
    (second_log,) = (tmp_path / "second" / "logs").glob("llama-server-*.log")
    assert "POST /v1/chat/completions" not in second_log.read_text(errors="replace")
