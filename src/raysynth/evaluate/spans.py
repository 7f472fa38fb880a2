"""Spans that no model of this run predicted, scored exactly like a model's predictions: the
annotator LLM's on a test set (`evaluate --llm`), or a table of labels made earlier
(`evaluate --labels`: what self-training labelled in real text, scored on that text's gold).

Why the second: self-training's students can only be as good as the labels they read, and
when some of the unlabelled text has gold, how good those labels are is the first thing to
know; the labels are matched to the gold by document id, after the step that made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.alignment import default_tokenize, entities_to_tags
from raysynth.annotate.job import predicted, read_corpus
from raysynth.config import TestSet
from raysynth.dataset import label_map_for, scored_ref
from raysynth.documents import Document, Entity
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.job import Evaluation, tally_predictions
from raysynth.evaluate.predict import prediction_row
from raysynth.evaluate.report import build_report, write_report
from raysynth.schema import PREDICTIONS


def score_spans(
    name: str,
    docs: list[Document],
    pred: list[list[Entity]],
    labels: set[str],
    cfg: EvaluateConfig,
    run_dir: Path,
    meta: dict[str, Any],
) -> Evaluation:
    """`pred[i]` (spans of `labels`) scored against `docs[i]`'s gold, through the model's
    own `prediction_row`, into `<run_dir>/predictions/<name>` and `<run_dir>/report/<name>`."""
    out = run_dir / "predictions" / name
    out.mkdir(parents=True, exist_ok=True)
    rows = [_row(doc, p, labels, cfg.abbreviations) for doc, p in zip(docs, pred, strict=True)]
    pq.write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS), out / "part-0.parquet")
    tally = tally_predictions(cfg, sorted(labels), str(out), len(rows))
    meta = {**meta, "model_labels": sorted(labels), "abbreviations": cfg.abbreviations}
    report = build_report(name, tally, meta)
    paths = write_report(report, run_dir / "report" / name)
    f1 = report["scores"]["seqeval_strict"]["overall"]["f1"]
    print(f"[evaluate] {name}: {len(rows)} documents, strict F1 {f1:.4f} -> {paths['markdown']}")
    return Evaluation(name, f1, str(out), paths)


def _row(doc: Document, pred: list[Entity], labels: set[str], abbreviations: bool) -> dict:
    doc.token_spans = doc.token_spans or default_tokenize(doc.text)
    pred_tags, _ = entities_to_tags([e for e in pred if e.label in labels], doc.token_spans)
    return prediction_row(doc, pred_tags, labels, abbreviations=abbreviations)


def evaluate_labels(
    labels_dir: Path,
    cfg: EvaluateConfig,
    tests: list[TestSet],
    run_dir: Path,
    labels: set[str] | None = None,
) -> list[Evaluation]:
    """The `annotations` table in `labels_dir` scored on each test set, named
    `<test set>-labels`; `labels`: the entity types it is meant to hold (default: those it
    or the gold holds, so that a type the labels never found counts as missed, not as left
    out). They are scored as they are: no abbreviation step (the step that made them ran its
    own)."""
    cfg = cfg.model_copy(update={"abbreviations": False})
    run_dir = Path(run_dir).resolve()
    results = []
    for test in tests:
        docs = read_corpus(scored_ref(test, cfg.label_map))
        pred = predicted(labels_dir, docs)
        found = {e.label for entities in pred for e in entities}
        types = labels or found | {e.label for doc in docs for e in doc.entities}
        mapping = label_map_for(test, cfg.label_map)
        meta = {"labels": str(labels_dir), "path": str(test.path), "label_map": mapping}
        results.append(score_spans(f"{test.name}-labels", docs, pred, types, cfg, run_dir, meta))
    return results
