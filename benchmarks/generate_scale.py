"""Generation at scale.

1. Engine: notes/s and completion tokens/s of `raysynth generate` against direct calls of the
   same llama.cpp server (SmolLM2, the `local` engine) with the same prompts, sampling and
   requests in flight (a thread pool of openai clients).
2. Plumbing alone at 10k, 100k and 1M prompts (--quick: 1k and 10k), each size in a fresh
   driver process: prompt-shard expansion, then the whole stage (read shards -> LLM stage ->
   post-processing -> de-duplicating shard writer -> stats) with every response already in
   the response cache (a 1-token completion, written before the clock starts). The endpoint
   is a closed loopback port, so any cache miss would become an error row, and the run asserts
   there are none: this measures raysynth's own plumbing with no stub server and no model.
   Expansion and cache pre-fill run in a child process, so the measured driver holds nothing
   but the stage. Reported per size: seconds (expansion, stage), rows/s, driver peak RSS (must
   stay flat), its resident memory at the start and after 10%, 50% and 100% of the shards, and
   the Ray Data executions (windows) the stage ran, and the resident memory of the process
   that ran each window (largest, and at the last shard). Each window's execution runs in a
   process of its own (`shards.in_windows`), so Ray Data's executor grows that process, by the
   minutes and blocks of its window (`--window-minutes`), not the driver.

    python benchmarks/generate_scale.py [--quick] [--sizes N ...] [--window-minutes M]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    SHARED_DATA,
    emit,
    in_fresh_process,
    peak_rss_mb,
    reset_peak_rss,
    rss_mb,
    start_ray,
    write_figures,
)

SHARD_ROWS = 1000


def recipe(num_notes: int, max_tokens: int):
    from raysynth.generate.recipe import Recipe

    lexicons = SHARED_DATA / "lexicons"
    return Recipe.model_validate(
        {
            "note_types": {"research abstract": 1},
            "entity_types": [
                {
                    "label": "Disease",
                    "definition": "a disease",
                    "lexicons": [{"path": str(lexicons / "diseases_mesh2017_C_F03.tsv")}],
                }
            ],
            "template": "sentence_v1",
            "min_chars": 1,
            "sampling": {"max_tokens": max_tokens, "temperature": 0.7},
            "num_notes": num_notes,
            "seed": 3,
        }
    )


def engine(n: int, max_tokens: int, in_flight: int) -> dict:
    """Stage vs direct calls on the same server."""
    import openai
    import pyarrow.parquet as pq

    from raysynth.generate.config import GenerateConfig
    from raysynth.generate.prompts import row_seed, write_prompt_shards
    from raysynth.generate.stage import generate
    from raysynth.llm.config import LocalBackend
    from raysynth.llm.local_server import local_server

    start_ray()
    out = {}
    with tempfile.TemporaryDirectory() as tmp, local_server(LocalBackend(), tmp) as server:
        rec = recipe(n, max_tokens)
        paths = write_prompt_shards(rec, Path(tmp) / "direct", 8)
        rows = [r for p in paths for r in pq.read_table(p).to_pylist()]
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")

        def call(row):
            r = client.chat.completions.create(
                model="local",
                messages=row["messages"],
                max_tokens=max_tokens,
                temperature=0.7,
                top_p=0.95,
                seed=row_seed(row["note_id"]),
            )
            return r.usage.completion_tokens

        started = time.monotonic()
        with ThreadPoolExecutor(in_flight) as pool:
            tokens = sum(pool.map(call, rows))
        direct_s = time.monotonic() - started
        backend = server.endpoint.model_copy(
            update={"concurrency": 1, "max_in_flight": in_flight, "batch_size": in_flight}
        )
        config = GenerateConfig(recipe=rec, backend=backend, shard_rows=8, cache=False)
        started = time.monotonic()
        result = generate(config.resolved(Path(tmp)), Path(tmp) / "run")
        stage_s = time.monotonic() - started
        stage_tokens = sum(
            r["usage"]["completion_tokens"] or 0
            for p in result.notes_dir.glob("*.parquet")
            for r in pq.read_table(p, columns=["usage"]).to_pylist()
        )
    out.update(
        notes=n,
        direct_notes_per_s=round(n / direct_s, 3),
        direct_tokens_per_s=round(tokens / direct_s, 1),
        stage_notes_per_s=round(n / stage_s, 3),
        stage_tokens_per_s=round(stage_tokens / stage_s, 1),
        stage_over_direct=round(direct_s / stage_s, 3),
        stage_seconds_including_actor_startup=round(stage_s, 1),
    )
    return out


def backend():
    from raysynth.llm.config import OpenAIBackend

    return OpenAIBackend(
        base_url="http://127.0.0.1:9/v1", model="none", api_key_env=None, max_retries=0
    )


def prefill(n: int, run: Path) -> dict:
    """Prompt shards and a response cache holding every prompt's 1-token answer, written by a
    process of its own so that the measured driver never holds the rows it pre-fills."""
    import pyarrow.parquet as pq

    from raysynth.generate.prompts import row_seed, write_prompt_shards
    from raysynth.llm.cache import ResponseCache, cache_key
    from raysynth.llm.http import build_request

    rec, endpoint = recipe(n, 1), backend()
    started = time.monotonic()
    paths = write_prompt_shards(rec, run / "generate" / "prompts", SHARD_ROWS)
    expand_s = time.monotonic() - started
    cache = ResponseCache(run / "llm-cache")
    for p in paths:
        for row in pq.read_table(p).to_pylist():
            row["seed"] = row_seed(row["note_id"])
            kind, body = build_request(row, endpoint, rec.sampling)
            key = cache_key(endpoint.base_url, endpoint.model, {"kind": kind, **body})
            text = f"Sentence {row['note_id']} about disease."
            usage = {"prompt_tokens": 1, "completion_tokens": 1}
            cache.put(key, {"response": text, "usage": usage})
    return {"expand_s": round(expand_s, 2)}


def plumbing(n: int, window_minutes: float) -> dict:
    """One size, in this (fresh) process: the stage alone, its driver's memory sampled after
    every shard written."""
    from raysynth.generate.config import GenerateConfig
    from raysynth.generate.stage import generate

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        figures = in_fresh_process(__file__, ["--prefill", str(n), str(run)], Path(tmp) / "p")
        config = GenerateConfig(
            recipe=recipe(n, 1),
            backend=backend(),
            shard_rows=SHARD_ROWS,
            window_minutes=window_minutes,
        )
        start_ray()
        reset_peak_rss()
        rss, window_rss = [rss_mb()], []

        def sample(summary: dict) -> None:
            rss.append(rss_mb())
            window_rss.append(summary["window_rss_mb"])

        started = time.monotonic()
        result = generate(config.resolved(Path(tmp)), run, on_shard=sample)
        stage_s = time.monotonic() - started
    assert result.counts["failed"] == 0, result.counts  # every response came from the cache
    return {
        "prompts": n,
        **figures,
        "stage_s": round(stage_s, 2),
        "rows_per_s": round(n / stage_s, 1),
        "driver_peak_rss_mb": round(peak_rss_mb()),
        # resident memory at the start, after a tenth, half and all of the shards
        "driver_rss_mb": [round(rss[len(rss) * k // 10]) for k in (0, 1, 5)] + [round(rss[-1])],
        # the process that ran the Ray Data executions (one per window): its largest
        # resident memory at a shard written, and at the last shard
        "window_process_rss_mb": {"max": round(max(window_rss)), "end": round(window_rss[-1])},
        "window_minutes": window_minutes,
        "windows": result.windows,
        "counts": result.counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plumbing", nargs=2, metavar=("SIZE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--window-minutes",
        type=float,
        default=5,
        help="the stage's window_minutes (default 5: several windows at 1M prompts)",
    )
    parser.add_argument(
        "--prefill", nargs=3, metavar=("SIZE", "RUN", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="plumbing sizes (default 10k 100k 1M; --quick 1k 10k)"
    )
    parser.add_argument("--plumbing-only", action="store_true", help="skip the engine part")
    args = parser.parse_args()
    if args.prefill:
        size, run, out = args.prefill
        write_figures(Path(out), prefill(int(size), Path(run)))
        return
    if args.plumbing:
        size, out = args.plumbing
        write_figures(Path(out), plumbing(int(size), args.window_minutes))
        return
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            out = Path(tmp) / f"plumbing-{n}.json"
            argv = ["--window-minutes", str(args.window_minutes), "--plumbing", str(n)]
            runs.append(in_fresh_process(__file__, argv, out))
            print(json.dumps(runs[-1]), flush=True)
    figures = {"plumbing": runs}
    per_row = [r["stage_s"] / r["prompts"] for r in runs]
    figures["plumbing_time_per_row_ratio_last_first"] = round(per_row[-1] / per_row[0], 2)
    if not args.plumbing_only:
        figures["engine"] = engine(8 if args.quick else 48, 32, 2)
    emit(figures)


if __name__ == "__main__":
    main()
