"""The annotate stage as a run step, and the annotator evaluation on human-labeled text.

`annotate_run` labels the run's generated notes (or `annotate.input`, treated as real text)
into `<run>/annotations/`, which the train stage reads. `evaluate_annotator` annotates a
real, human-labeled corpus with each strategy in turn and scores it with the Foundation
scoring: the papers' "LLM applied directly" baseline (Tang et al.: 23.37 F1 zero-shot).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.annotate.config import AnnotateConfig, MergeConfig
from raysynth.annotate.stage import AnnotateResult, annotate
from raysynth.config_base import CorpusRef
from raysynth.corpus import parse_label_map, read_documents
from raysynth.documents import Document, Entity
from raysynth.errors import ConfigError
from raysynth.schema import NOTES, STATUS_OK
from raysynth.scoring import Scores, score_documents
from raysynth.shards import write_atomic
from raysynth.storage import RunStorage


def annotate_run(
    config: AnnotateConfig,
    run_dir: Path,
    *,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    storage: RunStorage | None = None,
) -> AnnotateResult:
    """Annotate the run's notes into `<run_dir>/annotations/`; Ray must be running.
    `on_shard` and `storage` as for `annotate`."""
    storage = storage or RunStorage(Path(run_dir).resolve())
    run_dir = storage.local
    if config.input is None:
        notes_dir = run_dir / "generate" / "notes"
        inputs = sorted(notes_dir.glob("shard-*.parquet"))
        if not inputs:
            raise ConfigError(
                f"annotate: no notes in {notes_dir}; run the generate stage first or set "
                "annotate.input"
            )
        real_text = False
    else:
        docs = read_corpus(config.input)
        inputs = write_note_shards(docs, run_dir / "annotate" / "input", config.shard_rows)
        storage.push()  # the input shards, for the read tasks on other nodes
        real_text = True
    return annotate(config, inputs, run_dir / "annotations", run_dir, real_text=real_text,
                    on_shard=on_shard, storage=storage)  # fmt: skip


def read_corpus(ref: CorpusRef, limit: int | None = None) -> list[Document]:
    docs = read_documents(
        ref.path, ref.format, scheme=ref.scheme, label_map=parse_label_map(ref.label_map)
    )
    return list(itertools.islice(docs, limit))


def write_note_shards(docs: list[Document], out_dir: Path, shard_rows: int) -> list[Path]:
    """Documents as `notes` shards (text only: their labels are not shown to the annotator).
    Rewritten identically each time, so their names stay valid resume keys."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, start in enumerate(range(0, len(docs), shard_rows)):
        rows = [
            {"note_id": d.doc_id, "text": d.text, "entities": [], "status": STATUS_OK}
            for d in docs[start : start + shard_rows]
        ]
        path = out_dir / f"shard-{index:05d}.parquet"
        write_atomic(pa.Table.from_pylist(rows, schema=NOTES), path)
        paths.append(path)
    return paths


@dataclass
class StrategyScore:
    """One row of the annotator evaluation table."""

    strategy: str
    scores: Scores
    counts: dict[str, int]
    seconds: float
    annotations: Path

    def row(self) -> dict[str, object]:
        c, strict = self.counts, self.scores.seqeval_strict.overall
        return {
            "strategy": self.strategy,
            "precision": round(strict.precision, 4),
            "recall": round(strict.recall, 4),
            "f1": round(strict.f1, 4),
            "parse_failure_rate": round(c["failed_answers"] / max(1, c["answers"]), 4),
            "hallucination_rate": round(c["hallucinated"] / max(1, c["mentions"]), 4),
            "notes_per_s": round(c["rows"] / max(self.seconds, 1e-9), 3),
        }


def evaluate_annotator(
    config: AnnotateConfig,
    docs: list[Document],
    run_dir: Path,
    on_result: Callable[[StrategyScore], None] | None = None,
    abbreviations: bool = False,
) -> list[StrategyScore]:
    """Annotate the gold documents `docs` with each strategy alone (LLM labels only) and
    score each; writes `<run_dir>/annotator-eval/<strategy>/` and `results.json`.
    `on_result` sees each strategy's score as soon as it is known; `abbreviations`: score
    after the evaluation's abbreviation step (`EvaluateConfig.abbreviations`)."""
    from raysynth.evaluate.abbreviations import propagate_in_documents

    if not docs:
        raise ConfigError("annotator evaluation: no gold documents")
    run_dir = Path(run_dir).resolve()
    out = run_dir / "annotator-eval"
    inputs = write_note_shards(docs, out / "input", config.shard_rows)
    llm_only = MergeConfig(sources=["llm"], min_votes=config.merge.min_votes)
    results = []
    for strategy in config.strategies:
        single = config.model_copy(update={"strategies": [strategy], "merge": llm_only})
        started = time.monotonic()
        done = annotate(single, inputs, out / strategy.label / "annotations", run_dir,
                        real_text=True)  # fmt: skip
        seconds = time.monotonic() - started
        pred = predicted(done.out_dir, docs)
        if abbreviations:
            pred = propagate_in_documents(docs, pred)
        scores = score_documents(docs, pred, config.labels)
        results.append(StrategyScore(strategy.label, scores, done.counts, seconds, done.out_dir))
        if on_result is not None:
            on_result(results[-1])
    (out / "results.json").write_text(
        json.dumps([r.row() for r in results], indent=2), encoding="utf-8"
    )
    return results


def predicted(annotations_dir: Path, docs: list[Document]) -> list[list[Entity]]:
    """Each document's annotated entities, in the order of `docs`, from every Parquet file of
    `annotations_dir` (this stage's shards, or labels Ray Data wrote, as self-training's);
    quarantined notes keep what was found, usually nothing: they count as missed entities,
    not as left out. A document without a row, or whose row has another text, is an error:
    the annotations were made from other documents."""
    paths = sorted(Path(annotations_dir).glob("*.parquet"))
    if not paths:
        raise ConfigError(f"{annotations_dir} holds no Parquet files")
    by_id: dict[str, tuple[str, list[Entity]]] = {}
    for path in paths:
        for row in pq.read_table(path, columns=["note_id", "text", "entities"]).to_pylist():
            entities = [Entity.from_row(e) for e in row["entities"] or []]
            by_id[row["note_id"]] = (row["text"], entities)
    return [_entities_of(doc, by_id, annotations_dir) for doc in docs]


def _entities_of(
    doc: Document, by_id: dict[str, tuple[str, list[Entity]]], annotations_dir: Path
) -> list[Entity]:
    if doc.doc_id not in by_id:
        raise ConfigError(
            f"{annotations_dir} has no row for test document {doc.doc_id!r}: score "
            "annotations on the text they were made from"
        )
    text, entities = by_id[doc.doc_id]
    if text != doc.text:
        raise ConfigError(
            f"document {doc.doc_id!r} of {annotations_dir} has another text than the test "
            "set's: score annotations on the text they were made from"
        )
    return entities


def results_table(results: list[StrategyScore]) -> str:
    """The evaluation as a Markdown table."""
    rows = [r.row() for r in results]
    head = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
    return "\n".join(lines)
