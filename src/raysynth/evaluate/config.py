"""The `evaluate` section of a run config: how the trained model is run over the test sets."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from raysynth.config_base import Strict, location, resolve_path
from raysynth.evaluate.dictionary import DictionaryMode


class EvaluateConfig(Strict):
    """Batch inference with Ray Data and scoring on real, human-annotated test sets."""

    model: str | None = Field(
        default=None, description="Model folder; default: the run's model/ (the train stage's)."
    )
    batch_size: int = Field(
        default=256,
        ge=1,
        description="Documents per inference batch, the unit handed to an actor; their "
        "windows are sorted by length and run in passes of similar length, so a larger batch "
        "wastes less on padding, and a smaller one spreads a small test set over more actors. "
        "A test set of over 512 batches gets larger ones (the driver keeps state per batch).",
    )
    actors: int = Field(default=2, ge=1, description="Inference actors (one model each).")
    use_gpu: bool = Field(default=False, description="One GPU per inference actor.")
    cpus_per_actor: float = Field(default=1, gt=0, description="CPUs reserved per actor.")
    max_length: int = Field(default=128, ge=16, description="Subwords per window.")
    stride: int = Field(
        default=32, ge=0, description="Subwords shared by consecutive windows of a long text."
    )
    abbreviations: bool = Field(
        default=True,
        description="An abbreviation a test document defines ('myotonic dystrophy (DM)') takes "
        "its long form's predicted label wherever it occurs without a prediction of its own, "
        "and loses its predictions where its long form has none (evaluate/abbreviations.py); "
        "applied to the model, the dictionary and the LLM baselines alike. false: the "
        "predictions as they are.",
    )
    # Left out of dumps while "off", so that the digests of experiment cells scored before the
    # field existed still match.
    dictionary: DictionaryMode = Field(
        default="off",
        exclude_if=lambda mode: mode == "off",
        description="Combine the model's predictions with the matches of the run's "
        "`annotate.kb` lexicons: 'repair' replaces a prediction by a longer dictionary match "
        "it overlaps (boundaries only), 'union' also adds every match no prediction overlaps "
        "(evaluate/dictionary.py). Applied before the abbreviation step. 'off': the model "
        "alone, what an experiment's synthetic-only figures are.",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Test-set label -> model label (e.g. Chemical: DRUG); applied to gold.",
    )
    bootstrap: int = Field(
        default=1000, ge=0, description="Bootstrap replicates for the F1 interval (0: none)."
    )
    seed: int = Field(default=0, description="Seed of the bootstrap.")
    examples: int = Field(
        default=5, ge=0, description="Error examples kept per error kind in the report."
    )

    def resolved(self, base: Path) -> EvaluateConfig:
        if self.model and (base / self.model).exists():
            return self.model_copy(update={"model": str(resolve_path(base, location(self.model)))})
        return self
