"""The generate stage: prompt shards -> LLM layer -> post-processing -> note shards.

    prompts/shard-NNNNN.parquet  --llm_stage-->  clean, locate seeds  --ShardWriter-->
    notes/shard-NNNNN.parquet   (+ stats.json)

One note shard per prompt shard, written atomically (temporary name, then rename), so a
shard on disk is complete and a rerun reads only the prompt shards without a note shard:
finished work is skipped and no note_id can be written twice. The writer is a single Ray
actor at the end of the stream: it gathers each shard's rows as they arrive (only shards in
flight are held), removes duplicates across the whole corpus (asking the run's duplicate
index, `dedup.py`, which keeps keys, not texts), and writes the shard once all its rows are
in. The shards run as windows of `window_minutes` (`shards.in_windows`), each Ray Data
execution in a process of its own, so the driver holds no Ray Data state and only sees one
small summary row per shard. Which copy of a duplicate pair is kept depends on arrival order.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from raysynth.errors import ConfigError, RaysynthError
from raysynth.generate.config import GenerateConfig
from raysynth.generate.dedup import start_index
from raysynth.generate.postprocess import process
from raysynth.generate.prompts import corpus_key, load_template, row_seed, write_prompt_shards
from raysynth.generate.recipe import Recipe
from raysynth.llm.config import model_name
from raysynth.schema import ENTITIES, NOTES, SEED_MATCH
from raysynth.shards import (
    ShardGatherer,
    expected_rows,
    gatherer_remote_args,
    in_windows,
    pending_shards,
    read_shards,
    write_atomic,
)
from raysynth.storage import RunStorage

SUMMARY = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("ok", pa.int64()),
        pa.field("failed", pa.int64()),
        pa.field("removed", pa.int64()),
    ]
)
POSTPROCESSED = [
    pa.field("text", pa.string()),
    pa.field("status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("entities", ENTITIES),
    pa.field("seed_matches", pa.list_(SEED_MATCH)),
    pa.field("dup_keys", pa.list_(pa.string())),
]


@dataclass
class GenerateResult:
    """What one run of the stage did; `counts` reconcile: rows = ok + failed + removed."""

    out_dir: Path
    shards_written: list[str] = field(default_factory=list)
    shards_skipped: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    windows: int = 0  # Ray Data executions run (see GenerateConfig.window_minutes)

    @property
    def notes_dir(self) -> Path:
        return self.out_dir / "notes"

    @property
    def stats_path(self) -> Path:
        return self.out_dir / "stats.json"


def generator_record(config: GenerateConfig) -> str:
    """The `generator` column: model, sampling and template, never a key or a note."""
    recipe, backend = config.recipe, config.backend
    model = model_name(backend)
    template = load_template(recipe.template)
    return json.dumps(
        {
            "backend": backend.kind,
            "model": model,
            "sampling": recipe.sampling.model_dump(mode="json"),
            "template": template.name,
            "template_sha256": template.sha256,
            "prompt_style": recipe.prompt_style,
            "corpus_key": corpus_key(recipe),
            "seed": recipe.seed,
        },
        sort_keys=True,
    )


def _check_marker(out_dir: Path, marker: dict[str, Any]) -> None:
    """A run directory holds one corpus: refuse to mix shards of another recipe, seed or
    shard size into it."""
    path = out_dir / "recipe.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in marker if before.get(k) != marker[k]]
        if changed:
            raise ConfigError(
                f"generate: {out_dir} holds a corpus with a different {', '.join(changed)}; "
                "use another run name or delete that folder"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(marker, indent=2), encoding="utf-8")


def generate(
    config: GenerateConfig,
    run_dir: Path,
    *,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    storage: RunStorage | None = None,
) -> GenerateResult:
    """Run the stage into `<run_dir>/generate/`; Ray must be running (commands start it).
    `on_shard` is called with each shard's summary as it is written; `storage` says where
    workers on other nodes find the run (default: `run_dir` itself)."""
    from raysynth.generate.stats import corpus_stats

    config.check_backend()
    storage = storage or RunStorage(Path(run_dir).resolve())
    recipe: Recipe = config.recipe  # resolved by GenerateConfig.resolved
    result = GenerateResult(out_dir=storage.local / "generate")
    marker = {
        "corpus_key": corpus_key(recipe),
        "seed": recipe.seed,
        "shard_rows": config.shard_rows,
    }
    _check_marker(result.out_dir, marker)
    prompt_paths = write_prompt_shards(recipe, result.out_dir / "prompts", config.shard_rows)
    storage.push()  # the prompt shards, for the read tasks on other nodes
    result.notes_dir.mkdir(parents=True, exist_ok=True)
    pending, result.shards_skipped = pending_shards(prompt_paths, result.notes_dir)
    if pending:
        # closing(): an exception in on_shard (or Ctrl-C) leaves the llm_stage block at once,
        # stopping a local server, instead of when the generator is garbage-collected.
        shards = _run_shards(config, storage, pending, result.shards_skipped)
        with contextlib.closing(shards) as it:
            for summary in it:
                result.shards_written.append(summary["shard"])
                result.windows = summary["window"]
                if on_shard is not None:
                    on_shard(summary)
        unwritten = sorted({p.name for p in pending} - set(result.shards_written))
        if unwritten:
            raise RaysynthError(f"generate: shard(s) not written: {', '.join(unwritten)}")
    result.stats = corpus_stats(result.notes_dir, [p.name for p in prompt_paths])
    result.counts = result.stats["counts"]
    result.stats_path.write_text(json.dumps(result.stats, indent=2), encoding="utf-8")
    return result


def _run_shards(
    config: GenerateConfig, storage: RunStorage, pending: list[Path], finished: list[str]
) -> Iterator[dict[str, Any]]:
    """Yield one summary per shard written, streaming through Ray Data in windows
    (`in_windows`) that share the LLM stage (one local server, one rate limiter) and the
    corpus-wide duplicate index."""
    import ray

    from raysynth.llm import llm_stage

    recipe: Recipe = config.recipe
    notes_dir = storage.local / "generate" / "notes"
    cache_dir = storage.shared(storage.local / "llm-cache") if config.cache else None
    with llm_stage(
        config.backend, sampling=recipe.sampling, cache_dir=cache_dir, run_dir=storage.local
    ) as stage:
        index = start_index(notes_dir, finished)
        writer_kwargs = dict(
            notes_dir=str(notes_dir),
            expected=expected_rows(pending),
            generator=generator_record(config),
            index=index,
        )

        def execute(shards: list[Path]) -> Iterator[dict[str, Any]]:
            ds = read_shards([storage.shared(p) for p in shards])
            llm_rows = stage(ds.map_batches(_add_row_seed, batch_format="pyarrow"))
            return _window(llm_rows, recipe, writer_kwargs)

        try:
            yield from in_windows(pending, config.window_minutes * 60, execute)
        finally:
            ray.kill(index)


def _window(llm_rows: Any, recipe: Recipe, writer_kwargs: dict[str, Any]) -> Iterator[dict]:
    """One Ray Data execution: LLM rows -> post-processing -> the shard writer."""
    from ray.data import ActorPoolStrategy

    notes = llm_rows.map_batches(
        postprocess_batch,
        fn_kwargs={"min_chars": recipe.min_chars, "max_chars": recipe.max_chars},
        batch_format="pyarrow",
        num_cpus=0.5,
    )
    summaries = notes.map_batches(
        ShardWriter,
        fn_constructor_kwargs=writer_kwargs,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=1),
        **gatherer_remote_args(),  # survives the loss of any worker node
    )
    yield from summaries.iter_rows()


def _add_row_seed(batch: pa.Table) -> pa.Table:
    seeds = [row_seed(n) for n in batch.column("note_id").to_pylist()]
    return batch.append_column("seed", pa.array(seeds, pa.int64()))


def postprocess_batch(batch: pa.Table, min_chars: int, max_chars: int) -> pa.Table:
    """Ray Data task: the post-processing columns of each row (see postprocess.process)."""
    results = [process(row, min_chars, max_chars) for row in batch.to_pylist()]
    names = [f.name for f in POSTPROCESSED]
    batch = batch.drop_columns([n for n in names if n in batch.column_names])
    for f in POSTPROCESSED:
        batch = batch.append_column(f, pa.array([r[f.name] for r in results], type=f.type))
    return batch


class ShardWriter(ShardGatherer):
    """Ray Data actor (exactly one per window): gathers rows by prompt shard, removes
    duplicates across the corpus (asking the run's `DedupIndex` once per shard), writes each
    shard atomically when complete, returns one summary row per shard written. Input
    columns: the prompts table, `path` (source shard), the LLM result columns and
    POSTPROCESSED."""

    summary_schema = SUMMARY

    def __init__(
        self, notes_dir: str, expected: dict[str, int], generator: str, index: Any
    ) -> None:
        super().__init__(expected)
        self.notes_dir = Path(notes_dir)
        self.generator = generator
        self.index = index

    def finish(self, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import ray

        rows = sorted(rows, key=lambda r: r["note_id"])
        ok = [r for r in rows if r["status"] == "ok"]
        reasons = ray.get(
            self.index.claim.remote([(r["note_id"], r["dup_keys"] or []) for r in ok])
        )
        for row, reason in zip(ok, reasons, strict=True):
            if reason is not None:
                row.update(status="removed", reason=reason, entities=[])
        for row in rows:
            row["generator"] = self.generator
        table = pa.Table.from_pylist(rows, schema=NOTES)
        write_atomic(table, self.notes_dir / name)
        statuses = [r["status"] for r in rows]
        return {
            "shard": name,
            "rows": len(rows),
            "ok": statuses.count("ok"),
            "failed": statuses.count("failed"),
            "removed": statuses.count("removed"),
        }
