"""LLM stage throughput and rate-limiter accuracy against the local llama.cpp server.

1. The same chat requests go to the same server at the same concurrency twice: directly with
   `openai.AsyncOpenAI`, then through the Ray Data stage (actors x requests in flight).
   Requests/s and tokens/s of both, and stage / direct, are measured from the first request's
   arrival at the server to the last answer (a recording proxy in front of the server sees
   both runs), so Ray's actor start-up is reported apart (`stage_wall_s`).
2. The stage with a requests-per-minute limit far below what the server can do: the achieved
   rate at the server (after the initial burst) over the configured one.

Prints its figures as one JSON object on the last line.

    python benchmarks/llm_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


class RecordingProxy:
    """Forwards to the server and records (arrival, answered) times of every request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
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


def rates(times: list[tuple[float, float]], tokens: int) -> dict[str, float]:
    span = max(end for _, end in times) - times[0][0]
    return {"requests_per_s": len(times) / span, "tokens_per_s": tokens / span, "span_s": span}


def throughput(ray, proxy: RecordingProxy, model: str, n: int, max_tokens: int) -> dict:
    from raysynth.llm import OpenAIBackend, SamplingParams, llm_stage, summarize

    tokens = asyncio.run(direct(proxy.base_url, model, rows(n, "direct"), max_tokens))
    direct_rates = rates(proxy.take(), tokens)

    backend = OpenAIBackend(
        base_url=proxy.base_url,
        model=model,
        api_key_env=None,
        concurrency=ACTORS,
        max_in_flight=IN_FLIGHT,
        batch_size=IN_FLIGHT,
    )
    started = time.monotonic()
    sampling = SamplingParams(max_tokens=max_tokens)
    with llm_stage(backend, sampling=sampling) as stage:
        out = stage(ray.data.from_items(rows(n, "stage"), override_num_blocks=8)).materialize()
    wall = time.monotonic() - started
    summary = summarize(out)
    stage_rates = rates(proxy.take(), summary.completion_tokens)
    return {
        "requests": n,
        "max_tokens": max_tokens,
        "concurrency": ACTORS * IN_FLIGHT,
        "direct": direct_rates,
        "stage": {**stage_rates, "stage_wall_s": wall, "ok": summary.ok},
        "ratio_requests": stage_rates["requests_per_s"] / direct_rates["requests_per_s"],
        "ratio_tokens": stage_rates["tokens_per_s"] / direct_rates["tokens_per_s"],
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
    burst = max(1.0, per_minute / 60 * backend.burst_seconds)
    achieved = (len(arrivals) - burst) / (arrivals[-1] - arrivals[0]) * 60
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
    n, max_tokens, limit_n = (16, 16, 40) if args.quick else (64, 32, 120)

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
    with local_server(LocalBackend(threads=2), run_dir) as server:
        proxy = RecordingProxy(server.base_url)
        model = server.endpoint.model
        asyncio.run(direct(proxy.base_url, model, rows(2, "warm-up"), 4))
        proxy.take()
        figures = {
            "throughput": throughput(ray, proxy, model, n, max_tokens),
            "limiter": limiter(ray, proxy, model, 240.0, limit_n),
            "quick": args.quick,
        }
    ray.shutdown()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
