"""Training throughput of `raysynth train` (2 Ray Train workers, 1 thread each) against one
plain Hugging Face `Trainer` process (2 threads) on the same windows, model and batch per
step. Target: ratio >= 0.9. Samples/s are measured inside the training loop on both sides,
so start-up (Ray, worker spawn, dataset build) is reported apart.

    python benchmarks/train_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, emit, first_sentences, start_ray  # noqa: E402

from raysynth.config_base import CorpusRef  # noqa: E402
from raysynth.corpus import read_documents  # noqa: E402
from raysynth.train.config import TrainConfig  # noqa: E402
from raysynth.train.features import Featurizer, label_list, token_classifier  # noqa: E402
from raysynth.train.fit import default_model, train  # noqa: E402

BATCH_PER_STEP = 16


def plain_trainer(cfg: TrainConfig, train_file: Path, work: Path) -> float:
    """Samples/s of one HF Trainer process on the windows `raysynth train` builds."""
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    torch.set_num_threads(2)
    model_path = default_model()
    featurizer = Featurizer(model_path, cfg.labels, {}, cfg.max_length, cfg.stride)
    rows = []
    for doc in read_documents(train_file):
        for window, _ in featurizer.windows(doc.text, doc.entities, doc.token_spans):
            rows.append(window)
    model = token_classifier(model_path, label_list(cfg.labels))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    args = TrainingArguments(
        output_dir=str(work / "plain"),
        per_device_train_batch_size=BATCH_PER_STEP,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=cfg.seed,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        data_collator=DataCollatorForTokenClassification(tokenizer),
    )
    return trainer.train().metrics["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 sentences instead of 2000")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raysynth-train-speed-"))
    conll = SHARED_DATA / "ncbi_disease" / "conll"
    train_file = first_sentences(
        conll / "train.tsv", 300 if args.quick else 2000, work / "train.tsv"
    )
    dev_file = first_sentences(conll / "devel.tsv", 20, work / "dev.tsv")
    cfg = TrainConfig(
        data=CorpusRef(path=train_file),
        dev=CorpusRef(path=dev_file),
        labels=["Disease"],
        epochs=1,
        batch_size=BATCH_PER_STEP // 2,
        num_workers=2,
        early_stopping_patience=None,
    )
    baseline = plain_trainer(cfg, train_file, work)
    start_ray()
    started = time.monotonic()
    result = train(cfg, work / "run")
    wall = time.monotonic() - started
    ours = result.metrics["attempts"][-1]["train_samples_per_second"]
    emit(
        {
            "benchmark": "train_speed",
            "quick": args.quick,
            "raysynth_samples_per_s": round(ours, 2),
            "plain_trainer_samples_per_s": round(baseline, 2),
            "ratio": round(ours / baseline, 3),
            "target_ratio": 0.9,
            "raysynth_wall_seconds_including_startup": round(wall, 1),
            "raysynth_loop_seconds": result.metrics["attempts"][-1]["attempt_seconds"],
            "train_windows": result.metrics["counts"]["train_windows"],
        }
    )


if __name__ == "__main__":
    main()
