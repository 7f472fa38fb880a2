"""The multi-node fault scenario of tests/test_fault_tolerance.py, run in its own process.

    python tests/fault_cluster.py RUN_DIR BASE_URL REPORT_JSON

A `ray.cluster_utils.Cluster` (a head without CPUs and two worker nodes, all on 127.0.0.1)
annotates the note shards of RUN_DIR/generate/notes with the fake OpenAI endpoint at
BASE_URL, which answers some requests and then holds the next ones. While it holds them (so
annotation is in progress, with requests in flight), a thread removes a worker node that runs
the stage's actors, then lets the endpoint answer again. If the stage reports shards it
could not write, it is run again (a rerun). What happened goes to REPORT_JSON.

Its own process because a Cluster needs its own `ray.init(address=cluster.address)`, which
cannot coexist with the test session's Ray in one process; the caller gives it its own
RAY_TMPDIR, so its sockets, logs and address file are apart from any other Ray on the machine.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import ray

# Ray Data may fuse read_answers into the gatherer's actor: the gatherer is named first.
STAGE_CLASSES = ("AnnotationWriter", "OpenAIStage", "RequestBuilder", "read_answers")


def stage_actors() -> list[dict]:
    """Alive actors of the annotate stage, with their node. The GCS actor table knows each
    actor's node and pid but not which Ray Data operator it serves; the process title
    (`ray::MapWorker(MapBatches(OpenAIStage))`) does, and every node is on this machine."""
    actors = []
    for info in ray._private.state.actors().values():
        if info["State"] != "ALIVE":
            continue
        try:
            title = Path(f"/proc/{info['Pid']}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        name = next((c for c in STAGE_CLASSES if c in title), info["ActorClassName"])
        actors.append({"name": name, "node_id": info["Address"]["NodeID"], "pid": info["Pid"]})
    return actors


def endpoint(base_url: str, what: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{base_url}/{what}", timeout=10) as response:
        return json.loads(response.read())


def start_cluster(attempts: int = 3):
    """A head (no CPU) and two workers (2 CPUs each) on 127.0.0.1. Ray gives a node 30 s to
    register, which a busy 2-core machine sometimes misses: then start again."""
    from ray.cluster_utils import Cluster

    for attempt in range(1, attempts + 1):
        cluster = Cluster()
        try:
            # No CPU on the head, as in cluster/raycluster.yaml: it hosts the driver and GCS.
            cluster.add_node(num_cpus=0, include_dashboard=False, node_ip_address="127.0.0.1")
            workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in (1, 2)]
            cluster.wait_for_nodes()
            return cluster, workers
        except Exception as err:
            print(f"[fault_cluster] cluster start {attempt} failed: {err}", flush=True)
            cluster.shutdown()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def run_passes(annotate, config, inputs, out_dir, run_dir, on_shard, event) -> list[dict]:
    """The stage, and once more if it reports shards it could not write (a rerun)."""
    from raysynth.errors import RaysynthError

    passes: list[dict] = []
    for attempt in (1, 2):
        try:
            result = annotate(config, inputs, out_dir, run_dir, real_text=False, on_shard=on_shard)
        except RaysynthError as err:  # shards not written: the stage says which; rerun
            event("pass failed", attempt=attempt, error=str(err))
            passes.append({"error": str(err)})
            continue
        except Exception as err:
            event("pass crashed", attempt=attempt, error=repr(err))
            passes.append({"error": repr(err), "traceback": traceback.format_exc()})
            break
        written, skipped = result.shards_written, result.shards_skipped
        passes.append({"written": written, "skipped": skipped, "counts": result.counts})
        event("pass done", attempt=attempt, written=written)
        break
    return passes


def main(run_dir: Path, base_url: str, report_path: Path) -> int:
    from raysynth.annotate.config import AnnotateConfig
    from raysynth.annotate.stage import annotate

    report: dict = {"events": []}
    started = time.monotonic()

    def event(what: str, **data) -> None:
        report["events"].append({"t": round(time.monotonic() - started, 2), "what": what, **data})
        print(f"[fault_cluster] {what} {data}", flush=True)

    cluster, workers = start_cluster()
    ray.init(address=cluster.address, log_to_driver=True)
    ray.data.DataContext.get_current().enable_progress_bars = False
    report["head_node"] = cluster.head_node.node_id
    report["worker_nodes"] = [w.node_id for w in workers]
    event("cluster up", nodes=len(ray.nodes()))

    config = AnnotateConfig.model_validate(
        {
            "labels": {"Disease": "a disease, disorder or syndrome"},
            "backend": {
                "kind": "openai",
                "base_url": base_url,
                "model": "fake",
                "api_key_env": None,
                "concurrency": 2,
                "max_in_flight": 2,
                "batch_size": 1,
                "max_retries": 1,
                "backoff_initial_s": 0.2,
            },
            "strategies": [{"format": "json", "max_tokens": 64}],
        }
    )
    inputs = sorted((run_dir / "generate" / "notes").glob("shard-*.parquet"))
    out_dir = run_dir / "annotations"
    removed, finished = threading.Event(), threading.Event()

    def remove_worker() -> None:
        """Once the endpoint holds requests (some answered, more in flight) and the gatherer
        is up, remove a worker: the gatherer's if it runs on one, else the one running most
        of the stage's actors, but never the rate limiter's (calls in flight to a limiter
        that restarts are not retried and their notes end up quarantined: a known problem of
        raysynth.llm.ratelimit, not this scenario's); then let the endpoint answer again."""
        try:
            deadline = time.monotonic() + 60
            while True:
                stats, actors = endpoint(base_url, "stats"), stage_actors()
                gatherer_up = any(a["name"] == "AnnotationWriter" for a in actors)
                if stats["held"] and (gatherer_up or time.monotonic() > deadline):
                    break
                if finished.wait(0.2):
                    return
            on = {
                w.node_id: [a["name"] for a in actors if a["node_id"] == w.node_id] for w in workers
            }
            candidates = [w for w in workers if "EndpointLimiter" not in on[w.node_id]]
            victim = max(
                candidates, key=lambda w: ("AnnotationWriter" in on[w.node_id], len(on[w.node_id]))
            )
            event("removing worker", node=victim.node_id, endpoint=stats, actors=actors)
            report.update(
                removed_node=victim.node_id,
                actors_on_removed_node=sorted(on[victim.node_id]),
                actors_at_removal=actors,
                endpoint_at_removal=stats,
            )
            cluster.remove_node(victim, allow_graceful=False)
            event("worker removed", node=victim.node_id, endpoint=endpoint(base_url, "stats"))
            removed.set()
        finally:
            endpoint(base_url, "release")  # whatever happened, the stage must not wait

    remover = threading.Thread(target=remove_worker, daemon=True)
    remover.start()

    def on_shard(summary: dict) -> None:
        event("shard written", shard=summary["shard"], rows=summary["rows"])
        if "gatherer_node" not in report:  # it is alive now: it just wrote this shard
            nodes = [a["node_id"] for a in stage_actors() if a["name"] == "AnnotationWriter"]
            report["gatherer_node"] = nodes[0] if nodes else None

    report["passes"] = run_passes(annotate, config, inputs, out_dir, run_dir, on_shard, event)
    finished.set()
    remover.join(timeout=60)
    report["node_removed"] = removed.is_set()
    report["seconds"] = round(time.monotonic() - started, 2)
    report_path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    ray.shutdown()
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])))
