"""`raysynth evaluate --llm`: the annotator LLM applied directly to a real test set (the
papers' zero- and few-shot baseline), scored and reported exactly like a trained model.

Each strategy of the config's `annotate` section labels the test documents (through
`raysynth.annotate.job.evaluate_annotator`, so the privacy guard applies); its spans become a
`predictions` table (`evaluate.spans.score_spans`, the model's code path) and a report
under `<run>/report/<test set>-llm-<strategy>/`.
"""

from __future__ import annotations

from pathlib import Path

from raysynth.annotate.config import AnnotateConfig
from raysynth.annotate.job import evaluate_annotator, predicted, read_corpus
from raysynth.config import TestSet
from raysynth.dataset import label_map_for, scored_ref
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.job import Evaluation
from raysynth.evaluate.spans import score_spans


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
        scored = evaluate_annotator(annotate, docs, run_dir / "llm-baseline" / test.name)
        for strategy in scored:
            pred = predicted(strategy.annotations, docs)
            meta = {"annotator": strategy.strategy, "path": str(test.path), "label_map": mapping}
            name = f"{test.name}-llm-{strategy.strategy}"
            result = score_spans(name, docs, pred, labels, cfg, run_dir, meta)
            result.seconds = round(strategy.seconds, 2)
            results.append(result)
    return results
