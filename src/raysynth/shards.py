"""Shard-by-shard output, shared by the LLM stages (generate, annotate).

A stage reads input shards and writes one output shard per input shard, with the same name,
written atomically: a shard on disk is complete, so a rerun processes only the input shards
without an output and no row can be written twice (DESIGN.md, "Scale targets").

Ray Data gives no "all rows of input file X have arrived" event, so the last operator of such
a stage is a `ShardGatherer` actor (exactly one): it buffers rows by source shard, and when a
shard's expected row count is in, hands them to `finish` and returns one summary row. Only
shards in flight are held, and the driver sees one small row per shard.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.errors import RaysynthError


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename: a reader (or a rerun) sees
    the whole file or none of it, whatever interrupts the write."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def expected_rows(paths: list[Path], per_row: int = 1) -> dict[str, int]:
    """Rows each shard will send to the gatherer: its row count times `per_row` (requests
    per input row)."""
    return {p.name: pq.ParquetFile(p).metadata.num_rows * per_row for p in paths}


def read_shards(paths: list[str] | list[Path], columns: list[str] | None = None) -> Any:
    """A Dataset of the shards' rows plus a `path` column, one block per shard; a path may
    be a URI (`RunStorage.shared`).

    `read_parquet` does not keep files apart (its read tasks may merge small files, see
    ray-project/ray#47437), and a map task emits its output as one block when it ends: a
    stage reading many small shards in one block would then write nothing until every
    shard is done. One task per shard keeps the stage streaming shard by shard.
    """
    import ray.data

    items = [{"path": str(p)} for p in paths]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_shard, fn_kwargs={"columns": columns}, batch_size=1, batch_format="pyarrow"
    )


def _read_shard(batch: pa.Table, columns: list[str] | None) -> pa.Table:
    path = batch.column("path")[0].as_py()
    table = pq.read_table(path, columns=columns)
    return table.append_column("path", pa.array([path] * len(table), pa.string()))


def in_windows(
    pending: list[Path],
    window_seconds: float,
    execute: Callable[[list[Path]], Iterator[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    """Run a stage's shards as a series of Ray Data executions of about `window_seconds`
    each, each in a process of its own, yielding every shard summary with the `window`
    (1, 2, ...) that wrote it and that process's resident memory (`window_rss_mb`).

    Why a process per window: Ray Data's streaming executor holds memory in the process that
    runs it, growing with the minutes it runs (about 2 MB a minute on a laptop) and with the
    blocks it has run (about 60-90 KB per 1,000-row shard: object-store pages it touched,
    allocator arenas), and a process never gives most of it back. Run in the driver, a stage
    of a million notes grew the driver by 85 MB; run here, the driver only receives summary
    rows and stays flat, and each window's process exits when its window ends (README,
    generate_scale). `execute(shards)` builds and runs one execution, in that process (it is
    pickled there: it may hold actor handles, not open files or servers); past the window,
    the first shard written ends it (Ray Data stops its tasks and actors) and the shards not
    reported go to the next. Reads run far ahead of the LLM, so stopping the reads instead
    would not end a window. What is lost at a cut is the work in flight: the rows in the LLM
    stage (an HTTP backend's response cache keeps their answers) and a shard the writer
    finished without reporting it, which the next window writes again, replacing the file
    (the same note_ids). Each window writes at least one shard; one that writes none ends the
    series, and the caller names the shards left unwritten.
    """
    remaining, window = list(pending), 0
    while remaining:
        window += 1
        written: set[str] = set()
        for summary in _window_in_own_process(execute, remaining, window_seconds):
            written.add(summary["shard"])
            yield {**summary, "window": window}
        if not written:
            return
        remaining = [p for p in remaining if p.name not in written]


def _window_in_own_process(
    execute: Callable[[list[Path]], Iterator[dict[str, Any]]],
    shards: list[Path],
    window_seconds: float,
) -> Iterator[dict[str, Any]]:
    """`_window` as a streaming Ray task on the driver's node that uses no CPU (like the
    gatherer, see `gatherer_remote_args`) in a worker that exits after it (`max_calls=1`).
    Not retried: a window whose process died ends the stage, which names the shards left."""
    import ray
    from ray.data import DataContext
    from ray.exceptions import RayTaskError

    task = ray.remote(max_calls=1, max_retries=0, **gatherer_remote_args())(_window)
    # The driver's Ray Data settings (progress bars, timeouts) hold in the window's process;
    # Ray renders a worker's progress bars in the driver, which suits a terminal only.
    context = copy.copy(DataContext.get_current())
    context.use_ray_tqdm = context.use_ray_tqdm and sys.stdout.isatty()
    refs = task.remote(execute, shards, window_seconds, context)
    try:
        for ref in refs:
            yield ray.get(ref)
    except RayTaskError as err:
        if isinstance(err.cause, RaysynthError):
            raise err.cause from None  # the stage's own error, as if raised here
        raise
    finally:
        ray.cancel(refs)  # no-op once the window ended; stops it when the caller stops early


def _window(
    execute: Callable[[list[Path]], Iterator[dict[str, Any]]],
    shards: list[Path],
    window_seconds: float,
    context: Any,
) -> Iterator[dict[str, Any]]:
    """One window, in its own process: the shards' summaries until the deadline passes."""
    from ray.data import DataContext

    DataContext._set_current(context)
    deadline = time.monotonic() + window_seconds
    with contextlib.closing(execute(shards)) as summaries:
        for summary in summaries:
            yield {**summary, "window_rss_mb": _rss_mb()}
            if time.monotonic() > deadline:
                return


def _rss_mb() -> float | None:
    """This process's resident memory (Linux; None elsewhere)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def gatherer_remote_args() -> dict[str, Any]:
    """Ray Data arguments of a stage's gatherer actor: on the driver's node, with no CPU.

    Its buffers (rows of shards not yet complete) live only in its memory, and rows of calls
    it has finished are not sent again when it restarts: a gatherer lost with a worker node
    would leave those shards unwritten (the stage then fails naming them, and a rerun writes
    them from the response cache). Beside the driver it is only lost with the driver, which
    ends the run anyway. No CPU, because a cluster's head node often offers none to tasks
    (cluster/raycluster.yaml); it only merges and writes.
    """
    import ray
    from ray.util.placement_group import NODE_ID_LABEL_KEY

    driver_node = ray.get_runtime_context().get_node_id()
    return {"num_cpus": 0, "label_selector": {NODE_ID_LABEL_KEY: driver_node}}


def pending_shards(inputs: list[Path], out_dir: Path) -> tuple[list[Path], list[str]]:
    """(input shards without an output shard, names of those already done)."""
    pending = [p for p in inputs if not (out_dir / p.name).is_file()]
    return pending, [p.name for p in inputs if p not in pending]


class ShardGatherer:
    """Base of a stage's last Ray Data operator; input rows carry their source shard in a
    `path` column (`read_shards`). Subclasses set `key_columns` (what makes a row unique)
    and implement `finish`.

    Rows are kept by key, not appended: Ray may retry a batch whose rows already arrived,
    and a duplicate counted as a new row would close its shard with another row missing."""

    summary_schema: pa.Schema
    key_columns: tuple[str, ...] = ("note_id",)

    def __init__(self, expected: dict[str, int]) -> None:
        self.expected = expected
        self.buffers: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)

    def __call__(self, batch: pa.Table) -> pa.Table:
        for row in batch.to_pylist():
            key = tuple(row[c] for c in self.key_columns)
            self.buffers[Path(row.pop("path")).name][key] = row
        done = [n for n, rows in self.buffers.items() if len(rows) >= self.expected[n]]
        summaries = [self.finish(n, list(self.buffers.pop(n).values())) for n in done]
        return pa.Table.from_pylist(summaries, schema=self.summary_schema)

    def finish(self, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Write shard `name` from all its rows; return its summary row."""
        raise NotImplementedError
