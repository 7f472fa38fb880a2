"""The run configuration: typed, validated when loaded, so a wrong field fails before any
work starts with a message that names it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveInt, ValidationError, field_validator, model_validator

from raysynth.annotate.config import AnnotateConfig
from raysynth.config_base import CorpusRef, Strict, describe, read_yaml_mapping, resolve_path
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.generate.config import GenerateConfig
from raysynth.selftrain import SelfTrainingConfig
from raysynth.storage import RunStorage, is_uri
from raysynth.train.config import TrainConfig


class TestSet(CorpusRef):
    """A real, human-annotated corpus to evaluate on."""

    __test__ = False  # not a pytest test class, despite the name

    name: str = Field(description="Short name used in reports and output folders.")


class RunSelfTraining(SelfTrainingConfig):
    """After the model is trained and evaluated, it labels `text` (real notes nobody
    labelled), a student trains on those labels beside the synthetic notes with the train
    section's settings, is evaluated on the same test sets, and teaches the next round."""

    rounds: PositiveInt = Field(
        default=1,
        description="Students in a chain: round k's model labels the text for round k+1 "
        "(on NCBI-disease, round 2 gained a little and a third nothing; docs/RESULTS.md).",
    )


class RunConfig(Strict):
    """One run of the pipeline: where it writes, how each stage runs, what it is scored on."""

    name: str = Field(
        description="Run name: the run directory is <storage>/<name>.", pattern=r"^[A-Za-z0-9._-]+$"
    )
    storage: str = Field(
        default="runs",
        description="Where run directories live: a folder, or a URI of any filesystem pyarrow "
        "reads (s3://bucket/runs, gs://..., file://...), mirrored from a local working copy.",
    )
    work_dir: Path = Field(
        default=Path("~/.cache/raysynth/runs"),
        description="Local working copies of runs whose storage is a URI.",
    )
    generate: GenerateConfig | None = Field(
        default=None, description="Synthetic note generation (recipe -> prompts -> notes)."
    )
    annotate: AnnotateConfig | None = Field(
        default=None, description="LLM annotation of the notes (notes -> annotations)."
    )
    train: TrainConfig | None = Field(
        default=None, description="Fine-tuning of the NER model (Ray Train)."
    )
    evaluate: EvaluateConfig = Field(
        default_factory=EvaluateConfig, description="Batch inference and scoring (Ray Data)."
    )
    test_sets: list[TestSet] = Field(
        default_factory=list, description="Real test sets the trained model is scored on."
    )
    # Left out of dumps while unset, so the configs hashed before it existed keep their hash.
    self_training: RunSelfTraining | None = Field(
        default=None,
        exclude_if=lambda section: section is None,
        description="Students trained on the model's labels of real, unlabelled text "
        "(raysynth/selftrain.py): not synthetic-only, but no human label.",
    )

    @model_validator(mode="after")
    def _teacher_trains(self) -> RunConfig:
        if self.self_training is None:
            return self
        if self.train is None:
            raise ValueError(
                "self_training: needs a train section (the trained model is the first "
                "teacher, and each student trains with its settings)"
            )
        if is_uri(self.storage):
            raise ValueError(
                "self_training: runs on local storage only (each round writes its labels, "
                "links and model on the driver's machine); set storage to a folder"
            )
        return self

    @field_validator("storage", mode="before")
    @classmethod
    def _storage_text(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    def run_storage(self) -> RunStorage:
        return RunStorage.open(self.storage, self.name, self.work_dir)

    @property
    def run_dir(self) -> Path:
        """The run directory the driver reads and writes (a working copy for a URI)."""
        return self.run_storage().local


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config. Relative corpus and model paths inside it are
    taken relative to the config file, so a config works from any working directory."""
    path = Path(path)
    raw = read_yaml_mapping(path, "config")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {describe(err)}") from None
    return resolved_paths(config, path.parent)


def resolved_paths(config: RunConfig, base: Path) -> RunConfig:
    """The config with every relative path in it taken relative to `base` (the config file's
    folder, or a grid file's for an inline base)."""
    tests = [t.model_copy(update={"path": resolve_path(base, t.path)}) for t in config.test_sets]
    train = config.train.resolved(base) if config.train else None
    evaluate = config.evaluate.resolved(base)
    generate = config.generate.resolved(base) if config.generate else None
    annotate = config.annotate.resolved(base) if config.annotate else None
    selftrain = config.self_training.resolved(base) if config.self_training else None
    if selftrain is not None:
        selftrain.check(annotate.kb if annotate else None)
        _check_synthetic(selftrain, train)
    update = {
        "test_sets": tests,
        "train": train,
        "evaluate": evaluate,
        "generate": generate,
        "annotate": annotate,
        "self_training": selftrain,
    }
    return config.model_copy(update=update)


def _check_synthetic(selftrain: RunSelfTraining, train: TrainConfig) -> None:
    """Students train on the synthetic notes as annotation shards: the run's annotations/, or
    `train.data` when it is set, which must then be a local folder of them."""
    data = train.data.path if train.data else None
    if not selftrain.synthetic or data is None:
        return
    if is_uri(data) or not Path(data).is_dir() or not any(Path(data).glob("*.parquet")):
        raise ConfigError(
            f"self_training.synthetic: students train on the synthetic notes, and train.data "
            f"({data}) is not a local folder of annotation shards (*.parquet); point it at "
            "one, or set synthetic: false"
        )
