"""Ray Jobs end to end, as a user submits to a cluster: a separate Ray started with
`ray start --head` (its own temp dir and ports, token authentication on, dashboard on
127.0.0.1), `ray job submit --working-dir <repo> --runtime-env jobs/runtime_env.yaml` of
jobs/run_pipeline.py on a small run, the logs read back with `ray job logs`, and the cluster
stopped at the end by ending only the processes this module started (never `ray stop`, which
would also end the test session's own Ray)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from tests.helpers import write_easy_corpus

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
STOP_GRACE_S = 5


@dataclass
class LocalCluster:
    """A running `ray start --head` cluster: its Jobs API address, the environment that
    carries its token, and the process group its daemons run in."""

    address: str
    env: dict[str, str]
    process_group: int

    def ray(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the `ray` CLI from the repository root against this cluster."""
        return subprocess.run(
            [str(RAY), *args],
            env=env or self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def job(self, *args: str) -> subprocess.CompletedProcess:
        return self.ray("job", args[0], "--address", self.address, *args[1:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(group: int) -> None:
    """SIGTERM, then SIGKILL after a grace period, to every process in `group` (`ray start`'s
    daemons keep its process group) and their descendants (Ray gives each worker a process
    group of its own)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group:
                for p in (proc, *proc.children(recursive=True)):
                    found[p.pid] = p
        except (psutil.Error, ProcessLookupError):
            continue
    for proc in found.values():
        try:
            proc.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(found.values(), timeout=STOP_GRACE_S)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    # A short temp dir: Ray's Unix socket paths under it must stay below the OS limit.
    temp_dir = Path(tempfile.mkdtemp(prefix="rs-ray-"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0"
    )
    dashboard = free_port()
    ports = {
        "--port": free_port(),
        "--dashboard-port": dashboard,
        "--ray-client-server-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    # Ray swaps a loopback --node-ip-address for the machine's address, and its GCS and raylet
    # listen on every interface: one more reason the token stays on. The Jobs API (the
    # dashboard) is on 127.0.0.1 only.
    command = [
        str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1",
        "--dashboard-host", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats",
        "--object-store-memory", str(300 * 1024 * 1024), "--temp-dir", str(temp_dir),
        *(str(x) for pair in ports.items() for x in pair),
    ]  # fmt: skip
    # Its own session, so the daemons share one process group that no other Ray is in.
    starter = subprocess.Popen(
        command, env=env, cwd=temp_dir, start_new_session=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    cluster = LocalCluster(f"http://127.0.0.1:{dashboard}", env, starter.pid)
    try:
        log, _ = starter.communicate(timeout=180)
        assert starter.returncode == 0, log[-3000:]
        yield cluster
    finally:
        stop_process_group(cluster.process_group)
        shutil.rmtree(temp_dir, ignore_errors=True)


def small_config(tmp_path: Path, model: Path) -> Path:
    """The smallest run that still goes through Ray Data on the cluster: one small CoNLL test
    set scored with a tiny model."""
    test_set = write_easy_corpus(tmp_path / "easy.tsv", 30, seed=3)
    config = {
        "name": "job",
        "storage": str(tmp_path / "runs"),
        "test_sets": [{"name": "easy", "path": str(test_set), "format": "conll"}],
        "evaluate": {"model": str(model), "actors": 1, "bootstrap": 20, "batch_size": 16},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_submitted_pipeline_succeeds_and_its_logs_are_retrievable(
    local_cluster, tiny_ner_random, tmp_path
):
    config = small_config(tmp_path, tiny_ner_random)
    job_id = f"raysynth-test-{uuid.uuid4().hex[:8]}"
    submitted = local_cluster.job(
        "submit", "--submission-id", job_id, "--working-dir", str(REPO),
        "--runtime-env", "jobs/runtime_env.yaml", "--",
        sys.executable, "jobs/run_pipeline.py", "--config", str(config),
    )  # fmt: skip
    assert submitted.returncode == 0, output(submitted)[-4000:]
    assert f"Job '{job_id}' succeeded" in output(local_cluster.job("status", job_id))

    logs = local_cluster.job("logs", job_id)
    assert logs.returncode == 0, output(logs)[-2000:]
    text = output(logs)
    assert "[data] done" in text and "[evaluate] done" in text, text[-4000:]
    assert "easy: F1" in text
    # The driver joined the cluster it was submitted to instead of starting a Ray of its own.
    assert "Connecting to existing Ray cluster" in text
    assert "Started a local Ray instance" not in text

    run_dir = tmp_path / "runs" / "job"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {s["name"]: s["status"] for s in manifest["stages"]}["evaluate"] == "done"
    assert (run_dir / "report" / "easy" / "report.json").is_file()


def test_job_runs_the_uploaded_package_not_an_installed_copy(local_cluster):
    probe = "import raysynth; print('raysynth from', raysynth.__file__)"
    submitted = local_cluster.job(
        "submit", "--working-dir", str(REPO), "--runtime-env", "jobs/runtime_env.yaml",
        "--", sys.executable, "-c", probe,
    )  # fmt: skip
    assert submitted.returncode == 0, output(submitted)[-3000:]
    (line,) = [s for s in output(submitted).splitlines() if s.startswith("raysynth from")]
    assert "runtime_resources" in line and str(REPO / "src") not in line


@pytest.mark.parametrize(
    "client_auth, refusal",
    [
        ({"RAY_AUTH_MODE": "disabled"}, "Missing authentication token"),
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}, "Invalid authentication"),
    ],
    ids=["no-token", "wrong-token"],
)
def test_cluster_refuses_clients_without_its_token(local_cluster, client_auth, refusal):
    env = {k: v for k, v in local_cluster.env.items() if not k.startswith("RAY_AUTH_")}
    refused = local_cluster.ray(
        "job", "list", "--address", local_cluster.address, env={**env, **client_auth}
    )
    assert refused.returncode != 0
    assert "AuthenticationError" in output(refused) and refusal in output(refused)
