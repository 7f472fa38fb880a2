"""The annotate stage: note shards -> prompts -> LLM layer -> parse, align -> merge -> shards.

    notes/shard-NNNNN.parquet  --RequestBuilder-->  one request per (note, strategy, sample)
        --llm_stage-->  read_answers (parse + align)  --AnnotationWriter-->
    annotations/shard-NNNNN.parquet   (+ annotate/summary.json)

One annotation shard per note shard, named like it and written atomically (raysynth.shards),
so a rerun only annotates shards without output, and its LLM calls come from the response
cache. Every note gets a row: a note the generate stage did not keep, or whose answers cannot
be trusted, is written `quarantined` with the reason (rows in = ok + quarantined).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from raysynth.annotate.align import align
from raysynth.annotate.augment import Augmenter
from raysynth.annotate.config import AnnotateConfig, KnowledgeBase, Strategy, check_privacy
from raysynth.annotate.kb import hints
from raysynth.annotate.merge import Answer, decide, merge_note
from raysynth.annotate.parse import PARSERS
from raysynth.annotate.prompts import PromptBuilder, json_schema
from raysynth.documents import Entity
from raysynth.errors import ConfigError, RaysynthError
from raysynth.evaluate.abbreviations import label_abbreviations
from raysynth.generate.recipe import file_digest
from raysynth.llm.config import SamplingParams, model_name
from raysynth.schema import ANNOTATIONS, ENTITIES, STATUS_OK
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

NOTE_COLUMNS = ["note_id", "text", "entities", "status", "reason"]
SUMMARY = pa.schema(
    [
        pa.field("shard", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("ok", pa.int64()),
        pa.field("quarantined", pa.int64()),
        pa.field("augmented", pa.int64()),
        pa.field("answers", pa.int64()),
        pa.field("failed_answers", pa.int64()),
        pa.field("mentions", pa.int64()),
        pa.field("hallucinated", pa.int64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
    ]
)
ANSWER_COLUMNS = [
    pa.field("answer_entities", ENTITIES),
    pa.field("mentions", pa.int64()),
    pa.field("hallucinated", pa.int64()),
    pa.field("answer_error", pa.string()),
]


@dataclass
class AnnotateResult:
    """What one run of the stage did; counts reconcile: rows = ok + quarantined."""

    out_dir: Path
    shards_written: list[str] = field(default_factory=list)
    shards_skipped: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def summary_path(self) -> Path:
        return summary_dir(self.out_dir) / "totals.json"


def annotator_record(config: AnnotateConfig) -> str:
    """The `annotator` column: model, strategies with prompt versions, merge policy,
    augmentation and dictionary."""
    backend = config.backend
    model = model_name(backend)
    strategies = [
        {
            "name": s.label,
            "prompt_version": PromptBuilder(s, config.labels).version,
            **s.model_dump(mode="json", exclude={"name"}),
        }
        for s in config.strategies
    ]
    record = {
        "backend": backend.kind,
        "model": model,
        "strategies": strategies,
        "merge": config.merge.model_dump(mode="json"),
        "occurrences": config.occurrences,
    }
    if config.augment is not None:
        record["augment"] = config.augment.model_dump(mode="json")
    if config.kb is not None:
        record["kb"] = _kb_record(config.kb)
    return json.dumps(record, sort_keys=True)


def _kb_record(kb: KnowledgeBase) -> dict[str, Any]:
    """The dictionary by content, not path: a lexicon edited in place is another dictionary,
    the same files on another machine are the same one."""
    lexicons = {
        label: [{**f.model_dump(mode="json"), "path": file_digest(f.path)} for f in files]
        for label, files in kb.lexicons.items()
    }
    return {"lexicons": lexicons, "filters": kb.filters.model_dump(mode="json")}


def _check_annotator(out_dir: Path, record: str) -> None:
    """An annotations folder holds one annotator's work: resuming with another prompt,
    model or merge policy would mix them silently."""
    path = summary_dir(out_dir) / "annotator.json"
    if path.is_file() and path.read_text(encoding="utf-8") != record:
        raise ConfigError(
            f"annotate: {out_dir} holds annotations made with another annotator config (see "
            f"{path}); use another run name or delete that folder"
        )
    path.write_text(record, encoding="utf-8")


def stage_sampling(config: AnnotateConfig) -> SamplingParams:
    """Stage-wide sampling: JSON Schema output for structured json strategies; each request
    row overrides what differs per strategy (raysynth.llm's row overrides)."""
    return SamplingParams(
        max_tokens=max(s.max_tokens for s in config.strategies),
        response_format="json_schema",
        json_schema=json_schema(list(config.labels)),
    )


def annotate(
    config: AnnotateConfig,
    inputs: list[Path],
    out_dir: Path,
    run_dir: Path,
    *,
    real_text: bool,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    storage: RunStorage | None = None,
) -> AnnotateResult:
    """Annotate the note shards `inputs` into `out_dir` (one shard each); Ray must be
    running. `real_text` marks input that is not synthetic (the privacy guard). `on_shard`
    is called with each shard's summary as it is written; `storage` says where workers on
    other nodes find the run (default: `run_dir` itself)."""
    from raysynth.llm import llm_stage

    storage = storage or RunStorage(Path(run_dir).resolve())

    check_privacy(config, real_text, ", ".join(str(p) for p in inputs[:3]) or "the input")
    if config.augment is not None:  # lexicon errors now, before any LLM call
        Augmenter(config.augment, config.kb, config.seed)
    result = AnnotateResult(out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_dir(out_dir).mkdir(exist_ok=True)
    _check_annotator(out_dir, annotator_record(config))
    pending, result.shards_skipped = pending_shards(inputs, out_dir)
    if pending:
        cache_dir = storage.shared(storage.local / "llm-cache") if config.cache else None
        stage = (
            llm_stage(
                config.backend, sampling=stage_sampling(config), cache_dir=cache_dir,
                run_dir=storage.local,
            )
            if asks_llm(config)
            else contextlib.nullcontext(None)  # no server started, no request sent
        )  # fmt: skip
        per_note = sum(s.samples for s in config.strategies) if asks_llm(config) else 1
        expected = expected_rows(pending, per_note)
        with stage as llm:
            execute = functools.partial(_run_shards, config, llm, storage, out_dir, expected)
            windows = in_windows(pending, config.window_minutes * 60, execute)
            with contextlib.closing(windows) as summaries:
                for summary in summaries:
                    result.shards_written.append(summary["shard"])
                    if on_shard is not None:
                        on_shard(summary)
        unwritten = sorted({p.name for p in pending} - set(result.shards_written))
        if unwritten:
            raise RaysynthError(f"annotate: shard(s) not written: {', '.join(unwritten)}")
    result.counts = _totals(out_dir, [p.name for p in inputs])
    result.summary_path.write_text(json.dumps(result.counts, indent=2), encoding="utf-8")
    return result


def asks_llm(config: AnnotateConfig) -> bool:
    """Whether the labels take LLM spans: an annotator of seeds and dictionary alone
    (merge.sources without `llm`) asks nothing, so it costs no LLM time at all."""
    return "llm" in config.merge.sources


def _run_shards(
    config: AnnotateConfig,
    llm: Callable[[Any], Any] | None,
    storage: RunStorage,
    out_dir: Path,
    expected: dict[str, int],
    shards: list[Path],
) -> Iterator[dict[str, Any]]:
    """One Ray Data execution over `shards`, a window of `in_windows`; `expected`: rows
    per shard the writer waits for."""
    from ray.data import ActorPoolStrategy

    sources = [storage.shared(p) for p in shards]  # as the read tasks reach them
    requests = read_shards(sources, NOTE_COLUMNS).map_batches(
        RequestBuilder,
        fn_constructor_kwargs={"config": config},
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=1),
        num_cpus=0.5,
    )
    answers = (
        llm(requests).map_batches(
            read_answers,
            fn_kwargs={"labels": list(config.labels), "occurrences": config.occurrences},
            batch_format="pyarrow",
            num_cpus=0.25,
        )
        if llm is not None
        else requests  # one unasked row per note (RequestBuilder)
    )
    summaries = answers.map_batches(
        AnnotationWriter,
        fn_constructor_kwargs={
            "out_dir": str(out_dir),
            "expected": expected,
            "annotator": annotator_record(config),
            "config": config,
        },
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=1),
        **gatherer_remote_args(),  # survives the loss of any worker node
    )
    yield from summaries.iter_rows()


class RequestBuilder:
    """Ray Data actor: one request row per (note, strategy, sample), or one row with no
    answer per note when the annotator asks no LLM (`asks_llm`). An actor because the
    example pool, its embeddings and the dictionary are loaded once, not per batch."""

    def __init__(self, config: AnnotateConfig) -> None:
        from raysynth.annotate.resources import Resources

        self.config = config
        self.builders = [PromptBuilder(s, config.labels) for s in config.strategies]
        self.resources = Resources.load(config, prompts=asks_llm(config))

    def __call__(self, batch: pa.Table) -> pa.Table:
        notes = batch.to_pylist()
        texts = [n["text"] or "" for n in notes]
        kb = [self.resources.kb_entities(t) for t in texts]
        if not asks_llm(self.config):
            return pa.Table.from_pylist([_unasked(n, k) for n, k in zip(notes, kb, strict=True)])
        vectors = self.resources.embed(texts)
        rows = []
        for builder in self.builders:
            examples = self.resources.examples(builder.strategy, texts, vectors)
            for note, note_kb, shots in zip(notes, kb, examples, strict=True):
                rows += self._requests(builder, note, note_kb, shots)
        return pa.Table.from_pylist(rows)

    def _requests(self, builder: PromptBuilder, note: dict, kb: list[Entity], shots) -> list:
        strategy: Strategy = builder.strategy
        usable = note["status"] == STATUS_OK and bool(note["text"])
        found = hints(kb) if strategy.kb_in_prompt else []
        messages = builder.messages(note["text"], shots, found) if usable else None
        base = {
            **_note_columns(note, kb),
            "strategy": strategy.label,
            "format": strategy.format,
            "messages": messages,
            "max_tokens": strategy.max_tokens,
            "temperature": strategy.sampling_temperature,
            "response_format": "json_schema"
            if strategy.format == "json" and strategy.structured
            else "text",
        }
        return [
            {**base, "sample": i, "seed": self.config.seed * 1000 + i}
            for i in range(strategy.samples)
        ]


def _note_columns(note: dict, kb: list[Entity]) -> dict[str, Any]:
    return {
        "path": note["path"],
        "note_id": note["note_id"],
        "text": note["text"],
        "note_status": note["status"],
        "note_reason": note["reason"],
        "seeds": note["entities"] or [],
        "kb_entities": [e.to_row() for e in kb],
    }


def _unasked(note: dict, kb: list[Entity]) -> dict[str, Any]:
    """A note's one row when no LLM is asked: what the writer reads, with no answer."""
    return {
        **_note_columns(note, kb),
        "strategy": None,
        "sample": 0,
        "usage": {"prompt_tokens": None, "completion_tokens": None},
        "answer_entities": [],
        "mentions": 0,
        "hallucinated": 0,
        "answer_error": None,
    }


def read_answers(batch: pa.Table, labels: list[str], occurrences: str) -> pa.Table:
    """Ray Data task: each answer parsed and aligned to its note (ANSWER_COLUMNS)."""
    out: dict[str, list] = {f.name: [] for f in ANSWER_COLUMNS}
    for row in batch.select(["text", "format", "response", "llm_status", "llm_error"]).to_pylist():
        answer = read_answer(row, labels, occurrences)
        out["answer_entities"].append([e.to_row() for e in answer.entities])
        out["mentions"].append(answer.mentions)
        out["hallucinated"].append(answer.hallucinated)
        out["answer_error"].append(answer.error)
    keep = [c for c in batch.column_names if c not in ("messages", "response", *out)]
    batch = batch.select(keep)
    for f in ANSWER_COLUMNS:
        batch = batch.append_column(f, pa.array(out[f.name], type=f.type))
    return batch


def read_answer(row: dict[str, Any], labels: list[str], occurrences: str) -> Answer:
    """One response row -> Answer; the error says whether the call or the parse failed."""
    if row["llm_status"] != "ok":
        return Answer((), 0, 0, f"llm: {row['llm_error']}")
    parsed = PARSERS[row["format"]](row["response"], labels)
    if parsed.error:
        return Answer((), 0, 0, f"parse: {parsed.error}")
    aligned = align(row["text"], row["format"], parsed, occurrences)
    return Answer(tuple(aligned.entities), aligned.mentions, aligned.hallucinated, None)


class AnnotationWriter(ShardGatherer):
    """Ray Data actor (exactly one): gathers a shard's answers, merges each note's labels,
    writes the annotation shard, returns its summary row."""

    summary_schema = SUMMARY
    key_columns = ("note_id", "strategy", "sample")

    def __init__(
        self, out_dir: str, expected: dict[str, int], annotator: str, config: AnnotateConfig
    ) -> None:
        super().__init__(expected)
        self.out_dir = Path(out_dir)
        self.annotator = annotator
        self.config = config
        self.augment = config.augment and Augmenter(config.augment, config.kb, config.seed)

    def finish(self, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        by_note: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_note[row["note_id"]].append(row)
        notes = [self._note(by_note[nid]) for nid in sorted(by_note)]
        copies = self.augment(notes) if self.augment else []
        summary = _summary(name, notes + copies, rows, len(copies))
        # The summary first: a shard on disk always has one (the shard marks completion).
        (self.summary_dir / f"{name}.json").write_text(json.dumps(summary), encoding="utf-8")
        table = pa.Table.from_pylist(notes + copies, schema=ANNOTATIONS)
        write_atomic(table, self.out_dir / name)
        return summary

    @property
    def summary_dir(self) -> Path:
        return summary_dir(self.out_dir)

    def _note(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        first = rows[0]
        out = {
            "note_id": first["note_id"],
            "text": first["text"],
            "entities": [],
            "annotator": self.annotator,
            "usage": _usage(rows),
        }
        if first["note_status"] != STATUS_OK:
            reason = f"note {first['note_status']}: {first['note_reason'] or 'no reason given'}"
            return {**out, "status": "quarantined", "reason": reason}
        answers = [
            Answer(
                tuple(Entity.from_row(e) for e in r["answer_entities"]),
                r["mentions"],
                r["hallucinated"],
                r["answer_error"],
            )
            for r in rows
        ]
        seeds = [Entity.from_row(e) for e in first["seeds"]]
        kb = [Entity.from_row(e) for e in first["kb_entities"]]
        entities, _ = merge_note(seeds, answers, kb, self.config.merge)
        if self.config.merge.abbreviations:
            entities = label_abbreviations(first["text"], entities)
        status, reason = decide(answers, entities, seeds, self.config.merge)
        return {**out, "entities": [e.to_row() for e in entities], "status": status,
                "reason": reason}  # fmt: skip


def _summary(name: str, notes: list[dict], rows: list[dict], augmented: int) -> dict[str, Any]:
    answers = [r for r in rows if r["note_status"] == STATUS_OK and r["strategy"] is not None]
    statuses = [n["status"] for n in notes]
    return {
        "shard": name,
        "rows": len(notes),
        "ok": statuses.count(STATUS_OK),
        "quarantined": len(notes) - statuses.count(STATUS_OK),
        "augmented": augmented,
        "answers": len(answers),
        "failed_answers": sum(r["answer_error"] is not None for r in answers),
        "mentions": sum(r["mentions"] for r in answers),
        "hallucinated": sum(r["hallucinated"] for r in answers),
        "prompt_tokens": sum((r["usage"] or {}).get("prompt_tokens") or 0 for r in rows),
        "completion_tokens": sum((r["usage"] or {}).get("completion_tokens") or 0 for r in rows),
    }


def _usage(rows: list[dict[str, Any]]) -> dict[str, int | None]:
    def total(key: str) -> int | None:
        values = [(r["usage"] or {}).get(key) for r in rows]
        return (
            sum(v for v in values if v is not None) if any(v is not None for v in values) else None
        )

    return {
        "prompt_tokens": total("prompt_tokens"),
        "completion_tokens": total("completion_tokens"),
    }


def summary_dir(out_dir: Path) -> Path:
    """Per-shard summaries live beside, not inside, the annotations folder, which readers
    take as a Parquet dataset."""
    return out_dir.parent / f"{out_dir.name}-summary"


def _totals(out_dir: Path, names: list[str]) -> dict[str, int]:
    """Counts over the whole output (written now or by an earlier run)."""
    totals: dict[str, int] = dict.fromkeys(SUMMARY.names[1:], 0)
    for name in names:
        shard = json.loads((summary_dir(out_dir) / f"{name}.json").read_text(encoding="utf-8"))
        for key in totals:
            totals[key] += shard.get(key, 0)  # `augmented` is newer than some runs
    return totals
