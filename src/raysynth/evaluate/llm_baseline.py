"""`raysynth evaluate --llm`: the annotator LLM applied directly to a real test set (the
papers' zero- and few-shot baseline), scored and reported exactly like a trained model.

Each strategy of the config's `annotate` section labels the test documents (through
`raysynth.annotate.job.evaluate_annotator`, so the privacy guard applies); its spans become a
`predictions` table (`evaluate.predict.prediction_row`, the model's code path) and a report
under `<run>/report/<test set>-llm-<strategy>/`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raysynth.alignment import default_tokenize, entities_to_tags
from raysynth.annotate.config import AnnotateConfig
from raysynth.annotate.job import evaluate_annotator, predicted, read_corpus
from raysynth.config import TestSet
from raysynth.dataset import label_map_for, scored_ref
from raysynth.documents import Document, Entity
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.job import Evaluation, tally_predictions
from raysynth.evaluate.predict import prediction_row
from raysynth.evaluate.report import build_report, write_report
from raysynth.schema import PREDICTIONS


def evaluate_llm(
    annotate: AnnotateConfig,
    cfg: EvaluateConfig,
    tests: list[TestSet],
    run_dir: Path,
    limit: int | None = None,
) -> list[Evaluation]:
    """One Evaluation per (test set, strategy), named `<test set>-llm-<strategy>`."""
    run_dir = Path(run_dir).resolve()
    labels = set(annotate.labels)
    results = []
    for test in tests:
        mapping = label_map_for(test, cfg.label_map)
        docs = read_corpus(scored_ref(test, cfg.label_map), limit)
        for doc in docs:  # prediction rows are built on the document's words
            doc.token_spans = doc.token_spans or default_tokenize(doc.text)
        scored = evaluate_annotator(annotate, docs, run_dir / "llm-baseline" / test.name)
        for strategy in scored:
            pred = predicted(strategy.annotations, docs)
            name = f"{test.name}-llm-{strategy.strategy}"
            out = run_dir / "predictions" / name
            out.mkdir(parents=True, exist_ok=True)
            rows = [
                _row(doc, p, labels, cfg.abbreviations) for doc, p in zip(docs, pred, strict=True)
            ]
            pq.write_table(pa.Table.from_pylist(rows, schema=PREDICTIONS), out / "part-0.parquet")
            tally = tally_predictions(cfg, sorted(labels), str(out), len(rows))
            meta = {"annotator": strategy.strategy, "path": str(test.path),
                    "model_labels": sorted(labels), "label_map": mapping,
                    "abbreviations": cfg.abbreviations}  # fmt: skip
            report = build_report(name, tally, meta)
            paths = write_report(report, run_dir / "report" / name)
            f1 = report["scores"]["seqeval_strict"]["overall"]["f1"]
            print(f"[evaluate --llm] {name}: strict F1 {f1:.4f} -> {paths['markdown']}")
            results.append(Evaluation(name, f1, str(out), paths, round(strategy.seconds, 2)))
    return results


def _row(doc: Document, pred: list[Entity], labels: set[str], abbreviations: bool) -> dict:
    pred_tags, _ = entities_to_tags([e for e in pred if e.label in labels], doc.token_spans)
    return prediction_row(doc, pred_tags, labels, abbreviations=abbreviations)
