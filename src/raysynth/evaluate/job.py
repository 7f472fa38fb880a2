"""`raysynth evaluate`: Ray Data batch inference over each test set, the `predictions` table,
and a scored report per test set.

Two streaming passes per test set: inference writes the predictions as Parquet shards, then a
scoring pass reads them back and sums one small tally per batch, so neither the driver nor any
actor holds the whole set.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raysynth.annotate.config import KnowledgeBase
from raysynth.config import TestSet
from raysynth.config_base import CorpusRef
from raysynth.dataset import load_documents
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.predict import Predictor
from raysynth.evaluate.report import build_report, write_report
from raysynth.evaluate.tally import Tally, tally_batch
from raysynth.storage import RunStorage, clear


@dataclass
class Evaluation:
    name: str
    f1_strict: float
    predictions: str
    report: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # rows read, used, left out, scored


def model_labels(model_dir: str) -> list[str]:
    """The entity types a model folder predicts, read from its config (no weights loaded)."""
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        raise ConfigError(
            f"evaluate.model: {model_dir} is not a Hugging Face model folder "
            "(no config.json); train first or set evaluate.model"
        )
    id2label = json.loads(config_path.read_text())["id2label"].values()
    return sorted({tag.split("-", 1)[1] for tag in id2label if "-" in tag})


def evaluate(
    cfg: EvaluateConfig,
    model_dir: str,
    tests: list[TestSet],
    run_dir: Path,
    *,
    storage: RunStorage | None = None,
    kb: KnowledgeBase | None = None,
) -> list[Evaluation]:
    """Score the model folder `model_dir` (on this machine) on each test set; `storage`
    says where workers on other nodes find the run (default: `run_dir` itself); `kb`: the
    lexicons `cfg.dictionary` combines with the model (the run's `annotate.kb`)."""
    storage = storage or RunStorage(Path(run_dir).resolve())
    labels = model_labels(model_dir)
    if cfg.dictionary != "off" and kb is None:
        raise ConfigError(
            f"evaluate.dictionary: {cfg.dictionary!r} needs lexicons: give the run config an "
            "annotate.kb, or set evaluate.dictionary to 'off'"
        )
    for test in tests:
        if "://" not in str(test.path) and not Path(test.path).exists():
            raise ConfigError(f"test_sets: {test.name}: {test.path} does not exist")
    return [_one(cfg, model_dir, labels, test, storage, kb) for test in tests]


def _one(
    cfg: EvaluateConfig,
    model_dir: str,
    labels: list[str],
    test: TestSet,
    storage: RunStorage,
    kb: KnowledgeBase | None,
) -> Evaluation:
    started = time.monotonic()
    docs, read = load_documents(test, block_rows=cfg.batch_size)
    if docs is None:
        raise ConfigError(f"test_sets: {test.name}: {test.path} has no documents")
    out = storage.shared(storage.local / "predictions" / test.name)
    # write_parquet adds files to a folder: a rerun must not score the old ones too.
    clear(out)
    model = storage.shared(Path(model_dir).resolve())
    predict(cfg, model, test, docs, kb).write_parquet(out)
    tally = tally_predictions(cfg, labels, out, read.used)
    if tally.docs != read.used:
        raise RuntimeError(f"{test.name}: {read.used} documents in, {tally.docs} scored")
    meta = {
        "model": model_dir,
        "path": str(test.path),
        "model_labels": labels,
        "label_map": dict(cfg.label_map),
        "abbreviations": cfg.abbreviations,
        "dictionary": cfg.dictionary,
    }
    report = build_report(test.name, tally, meta)
    paths = write_report(report, storage.local / "report" / test.name)
    f1 = report["scores"]["seqeval_strict"]["overall"]["f1"]
    ci = report["f1_strict_95ci"]
    interval = f" (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if ci else ""
    print(
        f"[evaluate] {test.name}: {tally.docs} documents, strict F1 {f1:.4f}{interval} "
        f"-> {paths['markdown']}",
        flush=True,
    )
    counts = {**asdict(read), "scored": tally.docs}
    return Evaluation(test.name, f1, out, paths, round(time.monotonic() - started, 2), counts)


def predict(
    cfg: EvaluateConfig, model_dir: str, test: CorpusRef, docs: Any, kb: KnowledgeBase | None
) -> Any:
    """The `predictions` table of `docs` (a Dataset read from `test`), lazily: Ray Data runs
    `Predictor` in a pool of `cfg.actors` actors when it is consumed."""
    from ray.data import ActorPoolStrategy

    from raysynth.dataset import label_map_for

    kwargs = {
        "model_path": model_dir,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
        "label_map": label_map_for(test, cfg.label_map),
        "use_gpu": cfg.use_gpu,
        "abbreviations": cfg.abbreviations,
        "kb": kb,
        "dictionary": cfg.dictionary,
    }
    # A batch is a block (`load_documents` cuts blocks of cfg.batch_size documents or more): with a
    # batch size here, Ray Data would bundle the small upstream slice rows up to it and hand
    # every slice to one actor.
    return docs.map_batches(
        Predictor,
        fn_constructor_kwargs=kwargs,
        batch_size=None,
        compute=ActorPoolStrategy(size=cfg.actors),
        num_cpus=cfg.cpus_per_actor,
        num_gpus=1 if cfg.use_gpu else 0,
    )


def tally_predictions(cfg: EvaluateConfig, labels: list[str], predictions: str, rows: int) -> Tally:
    """The sum of one tally per batch of the `rows` predictions: batches of `rows_per_block`,
    so that the driver, which keeps some state per block, sums at most MAX_BLOCKS of them."""
    import ray.data

    from raysynth.dataset import BLOCK_ROWS, rows_per_block

    kwargs = {
        "model_labels": labels,
        "replicates": cfg.bootstrap,
        "seed": cfg.seed,
        "max_examples": cfg.examples,
    }
    total = Tally()
    ds = ray.data.read_parquet(str(predictions)).map_batches(
        tally_batch, fn_kwargs=kwargs, batch_size=rows_per_block(rows, BLOCK_ROWS)
    )
    for row in ds.iter_rows():
        total.merge(Tally.from_json(row["tally"]), cfg.examples)
    return total
