"""The `train` section of a run config: data, model, optimisation, scaling, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from raysynth.config_base import CorpusRef, Strict, resolve_path


class TrainConfig(Strict):
    """Fine-tuning of a Hugging Face token-classification model with Ray Train."""

    data: CorpusRef | None = Field(
        default=None,
        description="Training corpus; default: the run's annotations/ (rows with status=ok).",
    )
    dev: CorpusRef | None = Field(
        default=None,
        description="Real dev set for model selection; without one, dev_fraction of the "
        "training documents is held out.",
    )
    dev_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="Share held out as dev when `dev` is not given."
    )
    labels: list[str] = Field(
        min_length=1, description="Entity types the model learns, e.g. [Disease]."
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Source label -> one of `labels`, for sources whose labels differ.",
    )
    model: str | None = Field(
        default=None,
        description="Backbone: a Hugging Face folder; default the bundled all-MiniLM-L6-v2.",
    )
    max_length: int = Field(default=128, ge=16, description="Subwords per window.")
    stride: int = Field(
        default=32, ge=0, description="Subwords shared by consecutive windows of a long note."
    )
    subword_labels: Literal["first", "all"] = Field(
        default="first", description="Label the first subword of a word only, or all of them."
    )
    epochs: int = Field(default=3, ge=1, description="Passes over the training windows.")
    learning_rate: float = Field(default=5e-5, gt=0, description="Peak learning rate (AdamW).")
    batch_size: int = Field(default=16, ge=1, description="Windows per step per worker.")
    gradient_accumulation: int = Field(default=1, ge=1, description="Steps per update.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1, description="Share of warm-up steps.")
    seed: int = Field(default=42, description="Seed for initialisation, shuffling and split.")
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (data parallel).")
    use_gpu: bool = Field(default=False, description="One GPU per worker (NCCL), else gloo.")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs reserved per worker.")
    resources_per_worker: dict[str, float] = Field(
        default_factory=dict, description="Extra custom resources per worker."
    )
    bf16: bool | None = Field(
        default=None, description="Mixed precision; default on with GPUs, off on CPU."
    )
    keep_checkpoints: int = Field(default=2, ge=1, description="Best checkpoints kept.")
    early_stopping_patience: int | None = Field(
        default=2, ge=1, description="Evaluations without dev-F1 gain before stopping."
    )
    max_failures: int = Field(
        default=2, ge=-1, description="Worker failures survived (-1: unlimited)."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.stride >= self.max_length // 2:
            raise ValueError(f"stride ({self.stride}) must be < max_length / 2")
        unknown = sorted(set(self.label_map.values()) - set(self.labels))
        if unknown:
            raise ValueError(f"label_map targets {unknown} are not in labels {self.labels}")
        return self

    def resolved(self, base: Path) -> TrainConfig:
        """Paths made absolute against the config file's folder."""
        update: dict = {}
        for name in ("data", "dev"):
            ref = getattr(self, name)
            if ref is not None:
                update[name] = ref.model_copy(update={"path": resolve_path(base, ref.path)})
        if self.model and (base / self.model).exists():
            update["model"] = str(resolve_path(base, Path(self.model)))
        return self.model_copy(update=update)
