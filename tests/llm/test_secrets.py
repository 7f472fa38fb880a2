"""The API key reaches the endpoint and nothing else: not the output, the cache, the run
directory, the driver's output or Ray's logs, even when the endpoint echoes it in an error."""

from __future__ import annotations

from pathlib import Path

from llm_fakes import chat_rows

from raysynth.llm import OpenAIBackend, llm_stage, summarize

SENTINEL = "sk-raysynth-sentinel-7f3a9c2e51"
KEY_ENV = "RAYSYNTH_TEST_API_KEY"


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_sentinel_key_is_used_and_never_stored(
    ray_session, fake_endpoint, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv(KEY_ENV, SENTINEL)
    good = fake_endpoint(api_key=SENTINEL)
    # A server expecting another key answers 401 quoting the key it got.
    wrong = fake_endpoint(api_key="sk-some-other-key")
    run_dir = tmp_path / "run"
    for name, server in (("good", good), ("wrong", wrong)):
        backend = OpenAIBackend(base_url=server.base_url, model="fake", api_key_env=KEY_ENV)
        (run_dir / name).mkdir(parents=True)
        with llm_stage(backend, cache_dir=run_dir / name / "llm-cache") as stage:
            stage(ray_session.data.from_items(chat_rows(6))).write_parquet(
                str(run_dir / name / "responses")
            )
        (run_dir / name / "backend.json").write_text(backend.model_dump_json())

    read = ray_session.data.read_parquet
    assert summarize(read(str(run_dir / "good" / "responses"))).ok == 6
    failed = read(str(run_dir / "wrong" / "responses")).take_all()
    assert {r["llm_error"] for r in failed} == {"HTTP 401 (not retried)"}

    assert files_containing(run_dir, SENTINEL.encode()) == []
    logs = Path(ray_session._private.worker._global_node.get_logs_dir_path())
    assert files_containing(logs, SENTINEL.encode()) == []
    captured = capfd.readouterr()
    assert SENTINEL not in captured.out + captured.err
