"""A llama.cpp server on 127.0.0.1 for the `local` backend and `raysynth llm serve`.

The server is a child process (`python -m llama_cpp.server`) in its own session, so a Ctrl-C
in the terminal reaches raysynth first and raysynth stops the server in order: terminate,
wait, kill. Whatever ends the `with` block (normal exit, an exception, KeyboardInterrupt)
stops it, and its output is kept in a log file in the run directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from raysynth.errors import RaysynthError
from raysynth.llm.config import LocalBackend, OpenAIBackend
from raysynth.llm.export_hf import bundled_gguf

HOST = "127.0.0.1"
STOP_GRACE_S = 10.0


class LocalServerError(RaysynthError):
    """The local llama.cpp server did not start or stopped; names its log file."""


@dataclass(frozen=True)
class LocalServer:
    """A running server: where it answers and where its log is."""

    base_url: str
    log_path: Path
    process: subprocess.Popen
    endpoint: OpenAIBackend


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_command(config: LocalBackend, port: int) -> list[str]:
    gguf = config.gguf or bundled_gguf(config.bundled)
    if not Path(gguf).is_file():
        raise LocalServerError(f"gguf: no such file {gguf}")
    # Tokens are generated one at a time by threads that wait for each other, and the
    # server's HTTP loop needs a CPU too: with every CPU generating, each token waits for
    # a preempted thread (2 CPUs: 1.12 s per short request with 2 threads, 0.76 s with 1).
    # Reading a prompt is one large batch and does use every CPU (llama.cpp's own defaults;
    # the CPU count is this process's, which in a container may be fewer than the host's).
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", config.model_alias,
        "--host", HOST,
        "--port", str(port),
        "--n_threads", str(config.threads or max(1, cpus // 2)),
        "--n_threads_batch", str(cpus),
        "--n_ctx", str(config.n_ctx),
        # The server's default computes logits for every prompt token (for `logprobs`, which
        # raysynth never asks for).
        "--logits_all", "false",
    ]  # fmt: skip


@contextlib.contextmanager
def local_server(config: LocalBackend, run_dir: str | Path) -> Iterator[LocalServer]:
    """Start the server, wait until it answers, yield it, and stop it however the block ends.
    The log is `<run_dir>/logs/llama-server-<port>.log`."""
    port = config.port or free_port()
    log_path = Path(run_dir) / "logs" / f"llama-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{HOST}:{port}/v1"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            server_command(config, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(process, base_url, log_path, config.startup_timeout_s)
        yield LocalServer(base_url, log_path, process, config.endpoint(base_url))
    finally:
        stop(process)


def _wait_ready(process: subprocess.Popen, base_url: str, log_path: Path, timeout_s: float) -> None:
    """Poll GET /v1/models until it answers 200; fail early if the process dies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"llama.cpp server exited with code {process.returncode}; see {log_path}"
            )
        try:
            with opener.open(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise LocalServerError(f"llama.cpp server not ready after {timeout_s:.0f} s; see {log_path}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_GRACE_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
