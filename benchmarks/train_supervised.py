"""MiniLM fine-tuned through `raysynth train` on the real NCBI-disease train split and scored
on its dev split: checks the whole training path on real data (target: dev F1 >= 0.80,
seqeval strict, IOB2). The baseline from FINDINGS.md is 0.80 for one plain process.

    python benchmarks/train_supervised.py [--quick]
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
from raysynth.train.config import TrainConfig  # noqa: E402
from raysynth.train.fit import train  # noqa: E402

TARGET_F1 = 0.80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 sentences, 1 epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raysynth-train-supervised-"))
    conll = SHARED_DATA / "ncbi_disease" / "conll"
    train_file = first_sentences(
        conll / "train.tsv", 500 if args.quick else None, work / "train.tsv"
    )
    dev_file = first_sentences(conll / "devel.tsv", 200 if args.quick else None, work / "dev.tsv")
    cfg = TrainConfig(
        data=CorpusRef(path=train_file),
        dev=CorpusRef(path=dev_file),
        labels=["Disease"],
        max_length=256,
        epochs=1 if args.quick else args.epochs,
        learning_rate=args.learning_rate,
        batch_size=8,  # per worker: 16 per step over 2 workers, as in FINDINGS.md
        num_workers=2,
        warmup_ratio=0.1,
        early_stopping_patience=None,
    )
    start_ray()
    started = time.monotonic()
    result = train(cfg, work / "run")
    best = result.metrics["best"]
    emit(
        {
            "benchmark": "train_supervised",
            "quick": args.quick,
            "dev_f1_strict": round(best["eval_f1"], 4),
            "dev_f1_default": round(best["eval_f1_default"], 4),
            "dev_precision": round(best["eval_precision"], 4),
            "dev_recall": round(best["eval_recall"], 4),
            "best_step": best["step"],
            "epochs": cfg.epochs,
            "f1_by_evaluation": [round(e["eval_f1"], 4) for e in result.metrics["evaluations"]],
            "train_windows": result.metrics["counts"]["train_windows"],
            "wall_seconds": round(time.monotonic() - started, 1),
            "target_f1": TARGET_F1,
            "meets_target": best["eval_f1"] >= TARGET_F1,
            "baseline_single_process_f1_findings": 0.80,
        }
    )


if __name__ == "__main__":
    main()
