"""The corpus-wide duplicate index of the generate stage: one Ray actor for the whole run.

The stage runs as several Ray Data executions (`shards.in_windows`), and the writer actor of
each lives only as long as its execution; the keys of every note kept so far must outlive
them. Reloading them from the finished shards at each window would cost a read of the whole
corpus per window, so they live here, loaded once per run, and each shard's writer asks
once per shard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from raysynth.generate.postprocess import dup_keys


class DedupIndex:
    """Duplicate key -> note_id of the first note kept with it. Started by `start_index`."""

    def __init__(self, notes_dir: str, finished: list[str]) -> None:
        self.seen: dict[str, str] = {}
        for name in finished:  # a rerun: the notes kept before count first
            table = pq.read_table(Path(notes_dir) / name, columns=["note_id", "text", "status"])
            for row in table.to_pylist():
                if row["status"] == "ok":
                    self._remember(row["note_id"], dup_keys(row["text"]))

    def _remember(self, note_id: str, keys: list[str]) -> None:
        for key in keys:
            self.seen.setdefault(key, note_id)

    def claim(self, notes: list[tuple[str, list[str]]]) -> list[str | None]:
        """For each (note_id, duplicate keys), in order: why the note is removed ('exact
        duplicate of X' or 'near-duplicate of X'), or None when it is kept (and its keys are
        now taken). A note claimed again (a writer retried after a crash) is not its own
        duplicate."""
        reasons: list[str | None] = []
        for note_id, keys in notes:
            hit = next((k for k in keys if self.seen.get(k, note_id) != note_id), None)
            if hit is None:
                self._remember(note_id, keys)
                reasons.append(None)
            else:
                kind = "exact duplicate" if hit.startswith("x:") else "near-duplicate"
                reasons.append(f"{kind} of {self.seen[hit]}")
        return reasons


def start_index(notes_dir: Path, finished: list[str]) -> Any:
    """The index actor, beside the driver (like the stage's writer, see
    `shards.gatherer_remote_args`): only lost with the driver, which ends the run anyway."""
    import ray

    from raysynth.shards import gatherer_remote_args

    return ray.remote(DedupIndex).options(**gatherer_remote_args()).remote(str(notes_dir), finished)
