"""LLM stage throughput and rate-limiter accuracy against the local llama.cpp server.

1. The same chat requests go to the same server at the same concurrency twice: directly with
   `openai.AsyncOpenAI`, then through the Ray Data stage (actors x requests in flight).
   Requests/s and tokens/s of both, and stage / direct, are measured from the first request's
   arrival at the server to the last answer (a recording proxy in front of the server sees
   both runs), so Ray's actor start-up is reported apart (`wall_s`); `server_busy` says how
   much of that span the server had work.
2. The stage with a requests-per-minute limit below what the server can do: the achieved
   rate at the server (after the initial burst) over the configured one.

Prints its figures as one JSON object on the last line.

    python benchmarks/llm_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ACTORS = 2
IN_FLIGHT = 4  # per actor; the direct run uses ACTORS * IN_FLIGHT
# Well below what the server answers with max_tokens=1 even on a busy machine, so the limiter,
# not the server, sets the pace.
LIMIT_PER_MIN = 120.0
SERVER_THREADS = 1


class RecordingProxy:
    """Forwards to the server and records (arrival, answered) times of every request."""

    def __init__(self, upstream: str, server_pid: int) -> None:
        self.upstream = upstream
        self.server_pid = server_pid
        self.times: list[tuple[float, float]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = urllib.request.Request(
                    proxy.upstream + self.path.removeprefix("/v1"),
                    data=raw,
                    headers={"Content-Type": "application/json"},
                )
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(request, timeout=600) as response:
                    status, data = response.status, response.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy.times.append((arrived, time.monotonic()))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def take(self) -> list[tuple[float, float]]:
        times, self.times = sorted(self.times), []
        return times


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rows(n: int, tag: str) -> list[dict]:
    text = "Write one sentence about patient {i}'s follow-up visit ({tag})."
    content = [text.format(i=i, tag=tag) for i in range(n)]
    return [{"request_id": f"{tag}-{i}", "messages": [{"role": "user", "content": c}]}
            for i, c in enumerate(content)]  # fmt: skip


async def direct(base_url: str, model: str, batch: list[dict], max_tokens: int) -> int:
    """All requests with AsyncOpenAI at ACTORS * IN_FLIGHT concurrency; completion tokens."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key="unused",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(trust_env=False),
    )
    gate = asyncio.Semaphore(ACTORS * IN_FLIGHT)

    async def one(row: dict) -> int:
        async with gate:
            response = await client.chat.completions.create(
                model=model, messages=row["messages"], max_tokens=max_tokens, temperature=0.0
            )
            return response.usage.completion_tokens

    tokens = await asyncio.gather(*(one(r) for r in batch))
    await client.close()
    return sum(tokens)


def rates(times: list[tuple[float, float]], tokens: int, cpu_s: float) -> dict[str, float]:
    """Rates over the span from the first arrival to the last answer; the fraction of that
    span the server had at least one request (near 1: the caller kept it busy); the server's
    CPU time per generated token (the same in both runs: the work did not change, only how
    much CPU the server got)."""
    span = max(end for _, end in times) - times[0][0]
    busy, covered_to = 0.0, times[0][0]
    for arrived, answered in times:
        busy += max(0.0, answered - max(arrived, covered_to))
        covered_to = max(covered_to, answered)
    return {
        "requests_per_s": len(times) / span,
        "tokens_per_s": tokens / span,
        "span_s": span,
        "server_busy": busy / span,
        "server_cpu_ms_per_token": 1000 * cpu_s / max(tokens, 1),
    }


def run_direct(proxy: RecordingProxy, model: str, n: int, max_tokens: int) -> dict:
    cpu = cpu_seconds(proxy.server_pid)
    tokens = asyncio.run(direct(proxy.base_url, model, rows(n, "direct"), max_tokens))
    return rates(proxy.take(), tokens, cpu_seconds(proxy.server_pid) - cpu)


def run_stage(ray, proxy: RecordingProxy, model: str, n: int, max_tokens: int) -> dict:
    from raysynth.llm import OpenAIBackend, SamplingParams, llm_stage, summarize

    backend = OpenAIBackend(
        base_url=proxy.base_url,
        model=model,
        api_key_env=None,
        concurrency=ACTORS,
        max_in_flight=IN_FLIGHT,
        batch_size=IN_FLIGHT,
    )
    started, cpu = time.monotonic(), cpu_seconds(proxy.server_pid)
    sampling = SamplingParams(max_tokens=max_tokens)
    with llm_stage(backend, sampling=sampling) as stage:
        out = stage(ray.data.from_items(rows(n, "stage"), override_num_blocks=8)).materialize()
    wall, cpu = time.monotonic() - started, cpu_seconds(proxy.server_pid) - cpu
    summary = summarize(out)
    figures = rates(proxy.take(), summary.completion_tokens, cpu)
    return {**figures, "wall_s": wall, "ok": summary.ok}


def throughput(ray, proxy: RecordingProxy, model: str, n: int, max_tokens: int, rounds: int):
    """Direct and stage runs alternated `rounds` times, the best of each kept: the server's
    speed follows the machine's load, which alternating and best-of even out."""
    direct_runs, stage_runs = [], []
    for _ in range(rounds):
        direct_runs.append(run_direct(proxy, model, n, max_tokens))
        stage_runs.append(run_stage(ray, proxy, model, n, max_tokens))
    best_direct = max(direct_runs, key=lambda r: r["tokens_per_s"])
    best_stage = max(stage_runs, key=lambda r: r["tokens_per_s"])
    return {
        "requests": n,
        "max_tokens": max_tokens,
        "concurrency": ACTORS * IN_FLIGHT,
        "rounds": rounds,
        "direct": best_direct,
        "stage": best_stage,
        "ratio_requests": best_stage["requests_per_s"] / best_direct["requests_per_s"],
        "ratio_tokens": best_stage["tokens_per_s"] / best_direct["tokens_per_s"],
    }


def limiter(ray, proxy: RecordingProxy, model: str, per_minute: float, n: int) -> dict:
    from raysynth.llm import OpenAIBackend, SamplingParams, llm_stage

    backend = OpenAIBackend(
        base_url=proxy.base_url,
        model=model,
        api_key_env=None,
        concurrency=4,
        max_in_flight=8,
        batch_size=2,
        requests_per_minute=per_minute,
    )
    batch = [{"request_id": f"l{i}", "prompt": f"{i}: hi"} for i in range(n)]
    with llm_stage(backend, sampling=SamplingParams(max_tokens=1)) as stage:
        stage(ray.data.from_items(batch, override_num_blocks=8)).materialize()
    arrivals = [arrived for arrived, _ in proxy.take()]
    # The steady rate after the initial burst: the least-squares slope of request count over
    # arrival time, which one late or early request barely moves.
    steady = arrivals[math.ceil(per_minute / 60 * backend.burst_seconds) :]
    achieved = statistics.linear_regression(steady, range(len(steady))).slope * 60
    return {
        "configured_per_min": per_minute,
        "requests": len(arrivals),
        "achieved_per_min": achieved,
        "ratio": achieved / per_minute,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    args = parser.parse_args()
    n, max_tokens, limit_n, rounds = (16, 16, 30, 1) if args.quick else (48, 32, 120, 2)

    import ray

    from raysynth.llm import LocalBackend
    from raysynth.llm.local_server import local_server

    ray.init(
        num_cpus=4,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        configure_logging=False,
        log_to_driver=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    run_dir = Path(tempfile.mkdtemp(prefix="llm-throughput-"))
    # One llama.cpp thread: its threads spin while they wait for each other, so on a 2-core
    # machine a second one would compete with Ray's own processes and measure that contention
    # rather than the stage (a real endpoint runs on other machines).
    with local_server(LocalBackend(threads=SERVER_THREADS), run_dir) as server:
        proxy = RecordingProxy(server.base_url, server.process.pid)
        model = server.endpoint.model
        asyncio.run(direct(proxy.base_url, model, rows(2, "warm-up"), 4))
        proxy.take()
        figures = {
            "throughput": throughput(ray, proxy, model, n, max_tokens, rounds),
            "limiter": limiter(ray, proxy, model, LIMIT_PER_MIN, limit_n),
            "server_threads": SERVER_THREADS,
            "quick": args.quick,
        }
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
