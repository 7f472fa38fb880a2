"""Fault tolerance (issue #8): a worker node lost during annotation, and the driver killed
with SIGKILL mid-run then rerun. Each scenario runs in its own process with its own Ray (a
`ray.cluster_utils.Cluster`, or the local Ray `raysynth run` starts) in its own RAY_TMPDIR,
never the test session's. The LLM is a counting fake OpenAI endpoint on 127.0.0.1
(tests/llm/llm_fakes.py) that answers at once, or holds requests on cue so that a fault
lands while some are in flight: these tests are about what happens to rows and requests
when processes die; the real model path is tested elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from raysynth.llm.cache import cache_key
from raysynth.schema import NOTES
from tests.llm.llm_fakes import Call, FakeEndpoint, _Handler

REPO = Path(__file__).resolve().parents[1]
DISEASES = ["asthma", "gout", "anemia", "migraine", "psoriasis", "lupus", "colitis", "diabetes"]
WORDS = [
    *("patient", "clinic", "review", "noted", "mild", "severe", "chronic", "acute", "history"),
    *("family", "treated", "stable", "improved", "worsened", "follow-up", "week", "month"),
    *("daily", "dose", "therapy", "symptoms", "onset", "examination", "report", "admitted"),
    *("discharged", "outpatient", "baseline", "recurrent"),
]


def body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class CountingEndpoint(FakeEndpoint):
    """The fake endpoint (its private handler class extended), answering like the two
    stages' LLM and recording every request body: an annotate request (it asks for a JSON
    answer) gets the lexicon's diseases found in its note, a generate request a sentence
    with the seeds it asks for, worded from the body's hash so that notes differ.
    `delay_s` slows annotate answers; `hold_after` holds them (see `hold`)."""

    def __init__(self, delay_s: float = 0.0, hold_after: int | None = None) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.hold_after = hold_after
        self.released = threading.Event()
        self.answered = 0  # annotate requests answered
        self.held = 0  # annotate requests waiting for release
        self.bodies: list[tuple[str, str, dict]] = []  # (kind, hash, body) in arrival order
        handler = type("Handler", (_AnsweringHandler,), {"endpoint": self})
        self._server.RequestHandlerClass = handler
        # Clients that die mid-connection are the point here: no traceback for each reset.
        self._server.handle_error = lambda request, client_address: None

    def hold(self) -> None:
        """With `hold_after`: once that many annotate requests are answered, the next ones
        wait until GET /v1/release (or 120 s), so a fault lands while some are in flight."""
        with self._lock:
            hold = self.hold_after is not None and self.answered >= self.hold_after
            self.held += hold
        if hold:
            self.released.wait(timeout=120)
            with self._lock:
                self.held -= 1
        time.sleep(self.delay_s)
        with self._lock:
            self.answered += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            received = sum(k == "annotate" for k, _, _ in self.bodies)
            return {"received": received, "answered": self.answered, "held": self.held}

    def record(self, body: dict) -> Call:
        kind = "annotate" if "response_format" in body else "generate"
        with self._lock:
            self.bodies.append((kind, body_hash(body), body))
        return super().record(body)

    def counts(self, kind: str | None = None) -> Counter:
        with self._lock:
            return Counter(h for k, h, _ in self.bodies if kind in (None, k))


class _AnsweringHandler(_Handler):
    endpoint: CountingEndpoint

    def do_GET(self) -> None:  # /v1/stats, /v1/release: the scenario's view and its signal
        if self.path.endswith("/release"):
            self.endpoint.released.set()
        self._send(200, self.endpoint.stats())

    def _ok(self, call: Call, body: dict) -> None:
        prompt = body["messages"][-1]["content"]
        if "response_format" in body:
            self.endpoint.hold()
            labels = body["response_format"]["json_schema"]["schema"]["properties"]
            found = [d for d in DISEASES if re.search(rf"\b{d}\b", prompt)]
            content = json.dumps({label: found for label in labels})
        else:
            match = re.search(r"exactly as written: (.+?)\.", prompt)
            seeds = match.group(1).split(", ") if match else []
            digest = bytes.fromhex(body_hash(body))
            words = [WORDS[b % len(WORDS)] for b in digest[:8]]
            named = " and ".join(seeds) or "no acute findings"
            content = (f"The {words[0]} {words[1]} patient with {named} was seen for "
                       f"{words[2]} {words[3]} {words[4]}, then {words[5]} {words[6]} "
                       f"{words[7]} care.")  # fmt: skip
        usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        message = {"role": "assistant", "content": content}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0,
                         "model": body["model"], "choices": [choice], "usage": usage})  # fmt: skip


def ray_env(ray_tmp: Path) -> dict[str, str]:
    """The environment of a scenario process: its own Ray temp dir (sockets, logs, address
    file), no token auth on loopback, no address inherited from a surrounding Ray."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(RAY_TMPDIR=str(ray_tmp), RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    # Ray rewrites a 127.0.0.1 address given to ray.init into the machine's outward IP,
    # where a Cluster started on 127.0.0.1 does not listen; with this off (Ray's switch for
    # single-machine platforms) "this machine" stays 127.0.0.1 in every process.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def short_tmp() -> Path:
    """A short folder for RAY_TMPDIR: Ray's Unix sockets live under it, and a socket path
    may not exceed 107 bytes (pytest's tmp_path is too deep)."""
    return Path(tempfile.mkdtemp(prefix="rsft-", dir="/tmp"))


def scenario_processes(ray_tmp: Path, session: int | None = None) -> dict[int, str]:
    """{pid: command line} of every process of a scenario: in its session (`session`, the
    pid of a process started with start_new_session), or carrying its RAY_TMPDIR in its
    command line (raylet, GCS: their session folder) or environment (Ray workers, whose
    command line Ray replaces with a title such as `ray::MapWorker(...)`)."""
    marker, found = str(ray_tmp).encode(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            sid = os.getsid(pid)
        except OSError:
            continue
        if sid == session or marker in cmdline or marker in environ:
            found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def shard_rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("shard-*.parquet")) for r in pq.read_table(p).to_pylist()]


# --- multi-node fault ------------------------------------------------------------------------


def write_notes(run_dir: Path, shards: int, per_shard: int) -> list[str]:
    """Note shards as the generate stage writes them; every note names a lexicon disease."""
    notes = run_dir / "generate" / "notes"
    notes.mkdir(parents=True)
    ids = []
    for shard in range(shards):
        rows = []
        for i in range(per_shard):
            n = shard * per_shard + i
            disease = DISEASES[n % len(DISEASES)]
            text = f"Note {n}: the patient with {disease} was reviewed in clinic {n}."
            start = text.index(disease)
            entity = {"start": start, "end": start + len(disease), "label": "Disease",
                      "text": disease, "source": "seed"}  # fmt: skip
            rows.append({"note_id": f"note-{n:03d}", "text": text, "entities": [entity],
                         "status": "ok", "reason": None})  # fmt: skip
            ids.append(f"note-{n:03d}")
        table = pa.Table.from_pylist(rows, schema=NOTES)
        pq.write_table(table, notes / f"shard-{shard:05d}.parquet")
    return ids


def test_worker_node_lost_during_annotation(tmp_path):
    """Six shards of five notes on a head (no CPU) and two workers. After 12 answers the
    endpoint holds the next requests; a worker running stage actors (never the rate
    limiter's, see fault_cluster.py) is then removed and the endpoint answers again. The
    run completes in one pass: every note annotated exactly once and `ok`, counts
    reconcile, and the only requests sent twice are those in flight on the lost node."""
    run_dir = tmp_path / "run"
    note_ids = write_notes(run_dir, shards=6, per_shard=5)
    ray_tmp = short_tmp()
    report_path = tmp_path / "report.json"
    log = tmp_path / "cluster.log"
    script = REPO / "tests" / "fault_cluster.py"
    try:
        with CountingEndpoint(delay_s=0.2, hold_after=12) as llm, log.open("w") as out:
            proc = subprocess.run(
                [sys.executable, str(script), str(run_dir), llm.base_url, str(report_path)],
                env=ray_env(ray_tmp),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
            counts = llm.counts("annotate")
    finally:
        kill_pids(list(scenario_processes(ray_tmp)))
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, log.read_text()[-5000:]
    report = json.loads(report_path.read_text())
    events = [e["what"] for e in report["events"]]
    assert report["node_removed"], events
    lost = report["actors_on_removed_node"]
    assert {"OpenAIStage", "RequestBuilder"} & set(lost), lost
    # The gatherer runs beside the driver (raysynth.shards.gatherer_remote_args), so no
    # worker's loss can take the rows it holds.
    assert report["gatherer_node"] == report["head_node"]
    assert "shard written" in events[events.index("worker removed") :], "removed too late"
    assert len(report["passes"]) == 1, report["passes"]  # no rerun was needed

    rows = shard_rows(run_dir / "annotations")
    assert Counter(r["note_id"] for r in rows) == Counter(note_ids)  # each exactly once
    final = report["passes"][-1]["counts"]
    assert final["rows"] == len(note_ids) == final["ok"] + final["quarantined"]
    assert final["ok"] == len(note_ids)  # every note names a disease the fake finds
    # One request per note, and a request sent twice is one that was in flight in an
    # OpenAIStage actor of the lost node (its answer never reached the response cache):
    # at most max_in_flight (2) per such actor. Ray retries the actor's unfinished calls on
    # its restarted copy; the rows it had answered come from the cache.
    assert len(counts) == len(note_ids)
    resent = sum(n - 1 for n in counts.values())
    assert resent <= 2 * lost.count("OpenAIStage"), counts
    print(
        f"node loss: removed a worker running {lost} at {report['endpoint_at_removal']}; "
        f"{sum(counts.values())} requests for {len(note_ids)} notes ({resent} sent twice); "
        f"{final['rows']} rows, {final['ok']} ok, in {report['seconds']} s"
    )


# --- driver killed -----------------------------------------------------------------------


def run_config(tmp_path: Path, base_url: str) -> Path:
    """`raysynth run`: 24 notes in 6 shards of 4, generated and annotated through the fake
    endpoint (no train section, no test sets)."""
    lexicon = tmp_path / "diseases.txt"
    lexicon.write_text("\n".join(DISEASES) + "\n", encoding="utf-8")
    backend = {
        **{"kind": "openai", "base_url": base_url, "model": "fake", "api_key_env": None},
        **{"concurrency": 1, "max_in_flight": 2, "batch_size": 1, "max_retries": 0},
    }
    config = {
        "name": "killed",
        "storage": str(tmp_path / "runs"),
        "generate": {
            "recipe": {
                "note_types": {"progress note": 1},
                "entity_types": [
                    {
                        "label": "Disease",
                        "definition": "a disease",
                        "lexicons": [{"path": str(lexicon)}],
                        "per_note": [1, 2],
                    }
                ],
                "template": "sentence_v1",
                "sampling": {"max_tokens": 48, "temperature": 0.7},
                "num_notes": 24,
                "seed": 5,
            },
            "shard_rows": 4,
            "backend": backend,
        },
        "annotate": {
            "labels": {"Disease": "a disease, disorder or syndrome"},
            "backend": backend,
            "strategies": [{"format": "json", "max_tokens": 64}],
        },
    }
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def valid_cache_keys(cache_dir: Path) -> set[str]:
    """Keys of the cache entries a rerun can read (an entry cut short is a miss)."""
    keys = set()
    for path in cache_dir.rglob("*.json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        keys.add(path.stem)
    return keys


RAY_START_TIMEOUT = "timed out during startup"  # Ray gives a node a fixed 30 s to start


def start_run(command: list[str], env: dict, log: Path, attempts: int = 3) -> subprocess.Popen:
    """`raysynth run` in a session of its own (its pid is its process group). Ray sometimes
    misses its fixed start-up time on this busy 2-core machine: such a run is started again;
    any other early exit fails the test."""
    for attempt in range(1, attempts + 1):
        with log.open("w") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        while proc.poll() is None and "[generate]" not in log.read_text(errors="replace"):
            time.sleep(0.5)
        if proc.returncode is None or proc.returncode == 0:
            return proc
        text = log.read_text(errors="replace")
        assert RAY_START_TIMEOUT in text and attempt < attempts, text[-4000:]
        wait_for_exit(Path(env["RAY_TMPDIR"]), proc.pid)
    raise AssertionError("unreachable")


def wait_for_exit(ray_tmp: Path, session: int, timeout_s: float = 15.0) -> dict[int, str]:
    """Wait until every process of a scenario has ended; kill what is left after `timeout_s`
    and return it (the orphans)."""
    deadline = time.monotonic() + timeout_s
    while (left := scenario_processes(ray_tmp, session)) and time.monotonic() < deadline:
        time.sleep(0.5)
    kill_pids(list(left))
    return left


def test_driver_killed_mid_annotation_then_rerun(tmp_path):
    """`raysynth run` SIGKILLed (its whole process group) while annotation shards are being
    written; the same command run again completes the run. No note is written twice, counts
    reconcile, and no request answered and cached before the kill is sent again."""
    ray_tmp = short_tmp()
    run_dir = tmp_path / "runs" / "killed"
    annotations = run_dir / "annotations"
    env = ray_env(ray_tmp)
    try:
        # The endpoint holds every annotate request after the 6th answer: the kill then
        # comes while some shards are written and two requests are in flight.
        with CountingEndpoint(hold_after=6) as llm:
            command = [sys.executable, "-m", "raysynth.cli", "run",
                       str(run_config(tmp_path, llm.base_url))]  # fmt: skip
            first = start_run(command, env, tmp_path / "run1.log")
            deadline = time.monotonic() + 240
            while not (list(annotations.glob("shard-*.parquet")) and llm.stats()["held"]):
                assert first.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "annotation never started"
                time.sleep(0.2)
            ray_processes = len(scenario_processes(ray_tmp, first.pid))
            os.killpg(first.pid, signal.SIGKILL)  # the driver, its GCS and raylet
            first.wait()
            killed_at = time.monotonic()
            # The workers (a process group each) end when their raylet is gone.
            orphans = wait_for_exit(ray_tmp, first.pid)
            assert not orphans, f"Ray processes outlived the killed run: {orphans}"
            exit_s = time.monotonic() - killed_at
            written_before = sorted(p.name for p in annotations.glob("shard-*.parquet"))
            stats_at_kill, first_run = llm.stats(), list(llm.bodies)
            cached_after_kill = valid_cache_keys(run_dir / "llm-cache")
            llm.hold_after = None
            llm.released.set()  # the held requests are answered, to a client long gone

            for attempt in (1, 2, 3):  # the same command again (again if Ray did not start)
                log = tmp_path / f"rerun{attempt}.log"
                with log.open("w") as out:
                    second = subprocess.run(command, env=env, stdout=out,
                                            stderr=subprocess.STDOUT, timeout=300)  # fmt: skip
                text = log.read_text(errors="replace")
                if second.returncode == 0 or RAY_START_TIMEOUT not in text:
                    break
                wait_for_exit(ray_tmp, -1)
            assert second.returncode == 0, text[-5000:]
            second_run = llm.bodies[len(first_run) :]
    finally:
        kill_pids(list(scenario_processes(ray_tmp)))
        shutil.rmtree(ray_tmp, ignore_errors=True)

    # The rows: every note once, every note annotated once, counts reconcile.
    notes = shard_rows(run_dir / "generate" / "notes")
    note_ids = [n["note_id"] for n in notes]
    assert len(note_ids) == len(set(note_ids)) == 24
    assert sorted(r["note_id"] for r in shard_rows(annotations)) == sorted(note_ids)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    counts = {s["name"]: s["counts"] for s in manifest["stages"]}
    g, a = counts["generate"], counts["annotate"]
    assert g["rows"] == 24 == g["ok"] + g["failed"] + g["removed"]
    assert a["rows"] == 24 == a["ok"] + a["quarantined"]
    assert 0 < len(written_before) < 6

    # The requests. Within one run no body is sent twice (the fake never fails), and the
    # rerun sends no generate request: the notes were all on disk before the kill.
    def key(body: dict) -> str:  # the response cache's key of a request the endpoint saw
        return cache_key(llm.base_url, "fake", {"kind": "chat", **body})

    assert max(Counter(h for _, h, _ in first_run).values()) == 1
    assert max(Counter(h for _, h, _ in second_run).values()) == 1
    assert not [b for kind, _, b in second_run if kind == "generate"]
    first_generate = [b for kind, _, b in first_run if kind == "generate"]
    assert {key(b) for b in first_generate} <= cached_after_kill  # the key is the cache's
    # A response is written to the cache (one JSON file named by the request's key, written
    # straight to its final name, no rename) as soon as it arrives, before its row moves on
    # to the gatherer. So a request sent again is exactly one whose answer was not readable
    # in the cache at the kill: still in flight (here: held by the endpoint), answered but
    # not yet written, or a file cut short by the kill (unparsable: a miss). The stage
    # has at most concurrency x max_in_flight = 1 x 2 requests in flight; every answer
    # cached before the kill, which covers every row of the shards already written, is
    # never paid for again.
    first_keys = {key(b) for _, _, b in first_run}
    again = [key(b) for _, _, b in second_run if key(b) in first_keys]
    assert not set(again) & cached_after_kill
    assert len(again) <= 1 * 2
    print(
        f"driver kill: {ray_processes} processes, all gone {exit_s:.1f} s after the kill; "
        f"before it {len(first_generate)} generate and "
        f"{len(first_run) - len(first_generate)} annotate requests ({stats_at_kill}), "
        f"{len(written_before)} of 6 annotation shards written, "
        f"{len(cached_after_kill)} cache entries; rerun: {len(second_run)} requests, "
        f"{len(again)} of them sent before the kill"
    )
