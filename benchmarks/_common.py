"""Shared bits of the benchmark scripts: where the real corpora are, a local Ray session,
and the one-JSON-object-on-the-last-line output convention."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RAYSYNTH_SHARED_DATA", REPO.parent / "shared" / "data"))


def start_ray(num_cpus: int = 4) -> None:
    """A local Ray on loopback, with progress bars off so the output stays readable."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False


def first_sentences(source: Path, n: int | None, out: Path) -> Path:
    """The first n sentences of a CoNLL file (all when n is None), for --quick runs."""
    if n is None:
        return source
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:n]
    out.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return out


def emit(figures: dict) -> None:
    print(json.dumps(figures, sort_keys=True))


def reset_peak_rss() -> None:
    """Start a new peak-memory measurement of this process, so that a peak says what the
    measured work added, not what imports and start-up reached (Linux: writing 5 to
    clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """This process's peak resident memory since start or the last `reset_peak_rss`."""
    return _status_mb("VmHWM:")


def rss_mb() -> float:
    """This process's resident memory now."""
    return _status_mb("VmRSS:")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def in_fresh_process(script: str, args: list[str], out: Path) -> dict:
    """Run `python script *args out` (its own Ray session and peak memory) and return the
    figures it wrote to `out` with `write_figures`. A file, not stdout: Ray forwards worker
    log lines to the driver's stdout at any time."""
    subprocess.run([sys.executable, script, *args, str(out)], capture_output=True, cwd=REPO,
                   check=True)  # fmt: skip
    return json.loads(out.read_text())


def write_figures(out: Path, figures: dict) -> None:
    """The child side of `in_fresh_process`."""
    out.write_text(json.dumps(figures))
