"""What each Ray Train worker runs: a Hugging Face `Trainer` fed by the worker's Ray Data shard.

Why the Trainer and not a hand-written torch loop: it already does gradient accumulation, bf16,
the LR schedule, DDP over gloo or NCCL, checkpoints that hold optimizer and RNG state, resuming
from them, and early stopping on a metric; Ray Train's `prepare_trainer` feeds it Ray Data
shards and `RayTrainReportCallback` hands its checkpoints to Ray Train, which keeps the best N
and restarts failed workers from the latest one. What remains here is wiring.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from raysynth.alignment import IGNORE_INDEX
from raysynth.scoring import score_tags

FAULT_ONCE_MARKER = "fault_injected"
SHUFFLE_BUFFER_BATCHES = 16


def train_loop(cfg: dict[str, Any]) -> None:
    """Train on this worker's shard; every worker runs it, Ray Train wires them into DDP."""
    import tempfile

    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers import AutoTokenizer, DataCollatorForTokenClassification, Trainer

    from raysynth.train.features import token_classifier

    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    model = token_classifier(cfg["model"], cfg["label_list"])
    collator = DataCollatorForTokenClassification(tokenizer)
    # The windows were shuffled once on the driver; the buffer reorders them again within
    # each epoch, so no two epochs see the same batches.
    train_batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=cfg["batch_size"],
        collate_fn=partial(_collate, collator),
        local_shuffle_buffer_size=cfg["batch_size"] * SHUFFLE_BUFFER_BATCHES,
    )
    dev = [_features(row) for row in ray.train.get_dataset_shard("dev").iter_rows()]
    callbacks = [_Progress(cfg["early_stopping_patience"]), RayTrainReportCallback()]
    if cfg["fault_at_step"]:
        callbacks.append(_FaultOnce(cfg["fault_at_step"], cfg["run_dir"]))
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Trainer(
            model=model,
            args=_arguments(cfg, output_dir),
            train_dataset=train_batches,
            eval_dataset=dev,
            data_collator=collator,
            processing_class=tokenizer,
            compute_metrics=partial(dev_metrics, cfg["label_list"]),
            callbacks=callbacks,
        )
        trainer = prepare_trainer(trainer)
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            trainer.train()
            return
        with checkpoint.as_directory() as path:
            trainer.train(resume_from_checkpoint=str(Path(path) / "checkpoint"))


def _arguments(cfg: dict[str, Any], output_dir: str) -> Any:
    from transformers import TrainingArguments

    every = cfg["steps_per_epoch"]
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=cfg["max_steps"],  # required: a Ray Data shard has no length
        per_device_train_batch_size=cfg["batch_size"],
        per_device_eval_batch_size=cfg["batch_size"] * 2,
        gradient_accumulation_steps=cfg["gradient_accumulation"],
        learning_rate=cfg["learning_rate"],
        weight_decay=cfg["weight_decay"],
        warmup_steps=cfg["warmup_ratio"],
        seed=cfg["seed"],
        bf16=cfg["bf16"],
        use_cpu=not cfg["use_gpu"],
        eval_strategy="steps",
        eval_steps=every,
        save_strategy="steps",  # evaluate and save together, so each checkpoint has its F1
        save_steps=every,
        logging_steps=max(1, every // 4),
        save_total_limit=cfg["keep_checkpoints"],
        ignore_data_skip=True,  # on resume, go on with fresh batches instead of replaying
        report_to="none",
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )


def _features(row: dict[str, Any]) -> dict[str, list[int]]:
    return {k: np.asarray(row[k]).tolist() for k in ("input_ids", "attention_mask", "labels")}


def _collate(collator: Any, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Ray Data hands columns of ragged numpy arrays; the HF collator pads a list of rows."""
    columns = ("input_ids", "attention_mask", "labels")
    rows = zip(*(batch[k] for k in columns), strict=True)
    return collator(
        [dict(zip(columns, (np.asarray(v).tolist() for v in row), strict=True)) for row in rows]
    )


def dev_metrics(labels: list[str], prediction: Any) -> dict[str, float]:
    """Entity-level seqeval scores on the labelled subwords (one per word: the first), in
    strict mode for model selection and default mode for comparison with the papers."""
    logits, label_ids = prediction.predictions, prediction.label_ids
    predicted = np.argmax(logits, axis=-1)
    gold_tags, pred_tags = [], []
    for gold_row, pred_row in zip(label_ids, predicted, strict=True):
        keep = gold_row != IGNORE_INDEX
        gold_tags.append([labels[i] for i in gold_row[keep]])
        pred_tags.append([labels[i] for i in pred_row[keep]])
    strict = score_tags(gold_tags, pred_tags, "strict").overall
    default = score_tags(gold_tags, pred_tags, "default").overall
    return {
        "f1": strict.f1,
        "precision": strict.precision,
        "recall": strict.recall,
        "f1_default": default.f1,
    }


class _Progress(TrainerCallback):
    """Records where this attempt started (a resume shows in the metrics), prints one line per
    evaluation, and stops after `patience` evaluations without a better dev F1.

    Early stopping is done here rather than with transformers' EarlyStoppingCallback, which
    demands load_best_model_at_end: under DDP that reloads weights only rank 0 saved, and the
    best model is taken from Ray Train's best checkpoint anyway."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.best = -1.0
        self.stale = 0
        self.begin_step = 0
        self.begin_time = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.begin_step, self.begin_time = state.global_step, time.monotonic()
        state.log_history.append({"train_begin_step": state.global_step, "step": state.global_step})

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        seconds = time.monotonic() - self.begin_time
        steps = state.global_step - self.begin_step
        samples = steps * args.train_batch_size * args.gradient_accumulation_steps
        state.log_history.append(
            {
                "step": state.global_step,
                "train_begin_step": self.begin_step,
                "attempt_seconds": round(seconds, 2),
                "train_samples_per_second": round(samples * args.world_size / seconds, 3),
            }
        )
        f1 = metrics.get("eval_f1", 0.0)
        self.best, self.stale = (f1, 0) if f1 > self.best else (self.best, self.stale + 1)
        early = bool(self.patience) and self.stale >= self.patience
        control.should_training_stop |= early
        if state.is_world_process_zero:
            shown = {k: round(v, 4) for k, v in metrics.items() if "f1" in k}
            stop = " (early stop: no dev-F1 gain)" if early else ""
            print(
                f"[train] step {state.global_step}/{state.max_steps} {json.dumps(shown)}{stop}",
                flush=True,
            )


class _FaultOnce(TrainerCallback):
    """Test-only: the first worker raises once at `step`; a marker file under the run
    directory makes it once per run, so the restarted attempt goes through."""

    def __init__(self, step: int, run_dir: str) -> None:
        self.step = step
        self.marker = Path(run_dir) / FAULT_ONCE_MARKER

    def on_step_end(self, args, state, control, **kwargs):
        at_fault = state.global_step == self.step and state.is_world_process_zero
        if at_fault and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.touch()
            raise RuntimeError(f"injected test fault at step {state.global_step}")
