"""The grid file of `raysynth experiment`: a base run config and the axes it is varied along.

Everything is checked when the grid loads (every recipe's lexicons, every annotator's
strategies, every backbone folder, sizes against shard sizes), so a typo in the last cell
fails before the first corpus is generated, with a message naming the field.

An axis value only says what differs from the base: a recipe changes the base's `generate`
section, an annotator its `annotate` section, a backbone `train.model`. Paths in the grid
are relative to the grid file; paths in a `base_file` to that file.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    PositiveInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from raysynth.annotate.config import (
    AnnotateConfig,
    AugmentConfig,
    KnowledgeBase,
    MergeConfig,
    Strategy,
)
from raysynth.config import RunConfig, load_config
from raysynth.config_base import CorpusRef, Strict, read_yaml_mapping, resolve_path
from raysynth.errors import ConfigError
from raysynth.generate.config import GenerateConfig
from raysynth.generate.recipe import Recipe, check_recipe
from raysynth.llm.config import Backend
from raysynth.selftrain import SelfTrainingConfig
from raysynth.storage import is_uri
from raysynth.train.config import TrainConfig

NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class RecipeVariant(Strict):
    """One value of the `recipes` axis: the base's generate section with these changes. A
    plain string is short for `{recipe_file: ...}`."""

    recipe_file: Path | None = Field(default=None, description="Recipe YAML file.")
    recipe: dict[str, Any] | None = Field(default=None, description="Or: a recipe, inline.")
    patch: dict[str, Any] = Field(
        default_factory=dict,
        description="Recipe fields replaced after loading, e.g. {no_seed_fraction: 1.0} for "
        "a corpus written without knowledge seeds, or {language: Estonian}.",
    )
    shard_rows: PositiveInt | None = Field(default=None, description="Notes per shard.")
    backend: Backend | None = Field(default=None, description="Generator LLM backend.")

    @model_validator(mode="after")
    def _one_recipe(self) -> RecipeVariant:
        if self.recipe is not None and self.recipe_file is not None:
            raise ValueError("give recipe or recipe_file, not both")
        return self


class AnnotatorVariant(Strict):
    """One value of the `annotators` axis: the base's annotate section with these changes. A
    plain list is short for `{strategies: [...]}`."""

    strategies: list[Strategy] | None = Field(
        default=None, min_length=1, description="Prompt strategies (answers merged by vote)."
    )
    use_kb: bool = Field(
        default=True,
        description="False: no dictionary at all (no kb labels, no dictionary hints).",
    )
    kb: KnowledgeBase | None = Field(default=None, description="Replaces the base's kb.")
    examples: CorpusRef | None = Field(default=None, description="Few-shot example pool.")
    merge: MergeConfig | None = Field(default=None, description="Label merging.")
    augment: AugmentConfig | None = Field(
        default=None, description="Mention replacement copies of the ok notes."
    )
    backend: Backend | None = Field(default=None, description="Annotator LLM backend.")


class LlmBaseline(Strict):
    """The annotator LLM applied directly to the real test text, each strategy alone."""

    annotators: list[str] | None = Field(
        default=None, description="Annotators whose strategies are scored; default all."
    )
    limit: PositiveInt | None = Field(
        default=None, description="First N test documents only (LLM calls are slow on CPU)."
    )


class SupervisedBaseline(Strict):
    """The backbone fine-tuned on real labeled data: the ceiling synthetic data aims at. A
    plain path for `data` is short for `{path: ...}`."""

    data: CorpusRef = Field(description="Real training corpus, e.g. the train split.")
    dev: CorpusRef | None = Field(
        default=None, description="Model-selection set; default the base's train.dev."
    )
    epochs: PositiveInt | None = Field(default=None, description="Default the base's.")
    backbones: list[str] | None = Field(default=None, description="Default every backbone.")

    @field_validator("data", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class SelfTraining(SelfTrainingConfig):
    """Cells trained on real text no one labelled, labelled by a synthetic cell's model with
    the lexicons and the abbreviation step (raysynth/selftrain.py)."""

    teachers: list[Name] = Field(
        min_length=1, description="Cells whose models label the text: one student each."
    )


class Baselines(Strict):
    """Rows scored the same way as the cells, on the same test sets."""

    dictionary: bool | KnowledgeBase = Field(
        default=False,
        description="Dictionary matching: true uses each annotator's kb (each distinct kb "
        "once); or lexicons given here as a kb section.",
    )
    llm: LlmBaseline | None = Field(default=None, description="Annotator LLM on real text.")
    supervised: SupervisedBaseline | None = Field(
        default=None, description="Backbone fine-tuned on real data."
    )


LOCAL_ONLY = "experiments write to a local or mounted folder (set the grid's storage to one)"


class GridConfig(Strict):
    """The grid file. Cells are the cartesian product of the axes."""

    name: Name = Field(description="Experiment name: the folder is <storage>/<name>.")
    storage: str | None = Field(
        default=None, description="Folder of experiments (local or mounted); default the base's."
    )
    base: dict[str, Any] | None = Field(default=None, description="Base run config, inline.")
    base_file: Path | None = Field(default=None, description="Or: a run config file.")
    sizes: list[PositiveInt] = Field(min_length=1, description="Synthetic notes per cell.")
    recipes: dict[Name, RecipeVariant] = Field(
        default_factory=lambda: {"base": RecipeVariant()}, min_length=1
    )
    annotators: dict[Name, AnnotatorVariant] = Field(
        default_factory=lambda: {"base": AnnotatorVariant()}, min_length=1
    )
    backbones: dict[Name, str | None] = Field(
        default_factory=lambda: {"minilm": None},
        min_length=1,
        description="train.model values (null: the bundled MiniLM); a list names them.",
    )
    seeds: list[int] | None = Field(
        default=None, description="Recipe and training seeds; default the base's."
    )
    baselines: Baselines = Field(default_factory=Baselines)
    self_training: SelfTraining | None = Field(
        default=None, description="Students of cells, trained on real unlabelled text."
    )

    @field_validator("storage")
    @classmethod
    def _local_storage(cls, value: str | None) -> str | None:
        if value is not None and is_uri(value):
            raise ValueError(f"{LOCAL_ONLY}, not {value}")
        return value

    @field_validator("recipes", mode="before")
    @classmethod
    def _recipe_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"recipe_file": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("annotators", mode="before")
    @classmethod
    def _annotator_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"strategies": v} if isinstance(v, list) else v for k, v in value.items()}
        return value

    @field_validator("backbones", mode="before")
    @classmethod
    def _backbone_names(cls, value: Any) -> Any:
        return named_backbones(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _consistent(self) -> GridConfig:
        if (self.base is None) == (self.base_file is None):
            raise ValueError("give exactly one of base and base_file")
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError("sizes: a size is listed twice")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: a seed is listed twice")
        _known("baselines.llm.annotators", self.baselines.llm, "annotators", self.annotators)
        _known(
            "baselines.supervised.backbones", self.baselines.supervised, "backbones",
            self.backbones,
        )  # fmt: skip
        return self


def _known(field: str, section: Any, attr: str, names: dict) -> None:
    unknown = sorted(set(getattr(section, attr, None) or []) - set(names))
    if unknown:
        raise ValueError(f"{field}: unknown name(s) {', '.join(unknown)}")


def named_backbones(values: list[str | None]) -> dict[str, str | None]:
    """A backbone list as a mapping: null is `minilm`, a path is named by its last part."""
    named: dict[str, str | None] = {}
    for value in values:
        name = "minilm" if value is None else re.sub(r"[^A-Za-z0-9._-]", "-", Path(value).name)
        unique, n = name, 2
        while unique in named:
            unique, n = f"{name}-{n}", n + 1
        named[unique] = value
    return named


@dataclass(frozen=True)
class Grid:
    """A loaded grid: the base run config and every axis value as a checked stage config."""

    path: Path
    config: GridConfig
    base: RunConfig
    recipes: dict[str, GenerateConfig]  # num_notes = the largest size
    annotators: dict[str, AnnotateConfig]
    backbones: dict[str, str | None]

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def sizes(self) -> list[int]:
        return sorted(self.config.sizes)

    @property
    def exp_dir(self) -> Path:
        return (Path(self.config.storage or self.base.storage) / self.config.name).resolve()

    @property
    def seeds(self) -> list[int | None]:
        return list(self.config.seeds) if self.config.seeds is not None else [None]


@contextlib.contextmanager
def naming(source: Path, *field: str) -> Iterator[None]:
    """Re-raise a validation or config error with the grid file and the field it came from."""
    try:
        yield
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join([*field, *(str(p) for p in e["loc"])])
            message = e["msg"].removeprefix("Value error, ")  # these name their field
            problems.append(f"{where}: {message}" if where else message)
        raise ConfigError(f"{source}: {'; '.join(problems)}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {'.'.join(field)}: {err}") from None


def load_grid(path: str | Path) -> Grid:
    """Read, validate and resolve a grid file; every check a run could fail runs here."""
    path = Path(path)
    raw = read_yaml_mapping(path, "grid")
    with naming(path):
        config = GridConfig.model_validate(raw)
    folder = path.parent.resolve()
    base = _base(config, path, folder)
    largest = max(config.sizes)
    recipes = {
        name: _recipe(path, name, variant, base, folder, largest)
        for name, variant in config.recipes.items()
    }
    annotators = {
        name: _annotator(path, name, variant, base, folder)
        for name, variant in config.annotators.items()
    }
    backbones = {
        name: _backbone(path, name, value, folder) for name, value in config.backbones.items()
    }
    grid = Grid(path, config, base, recipes, annotators, backbones)
    _check(grid)
    return grid


def _base(config: GridConfig, path: Path, folder: Path) -> RunConfig:
    """The base run config, resolved against its own file (base_file) or the grid's."""
    from raysynth.config import resolved_paths

    if config.base_file is not None:
        with naming(path, "base_file"):
            base = load_config(resolve_path(folder, config.base_file))
    else:
        with naming(path, "base"):
            raw = {"name": config.name, **config.base}
            base = resolved_paths(RunConfig.model_validate(raw), folder)
    with naming(path, "base"):
        if base.train is None:
            raise ConfigError("train: the grid trains a model per cell; give a train section")
        if base.train.data is not None:
            raise ConfigError(
                "train.data: cells train on their annotations; real training data goes in "
                "baselines.supervised"
            )
        if base.annotate is not None and base.annotate.input is not None:
            raise ConfigError("annotate.input: cells annotate their generated notes")
        if not base.test_sets:
            raise ConfigError("test_sets: the grid scores every cell on real test sets")
        if base.self_training is not None:
            raise ConfigError(
                "self_training: a grid self-trains from its own top-level self_training "
                "(with teachers)"
            )
    return base


def _section(base: Any, overlay: dict[str, Any]) -> dict[str, Any]:
    """A base section (already resolved, so its paths are absolute) as raw fields with the
    overlay's fields replacing them."""
    raw = base.model_dump(mode="json") if base is not None else {}
    if "recipe" in overlay or "recipe_file" in overlay:
        raw.pop("recipe", None)
        raw.pop("recipe_file", None)
    return {**raw, **overlay}


def _recipe(
    path: Path, name: str, variant: RecipeVariant, base: RunConfig, folder: Path, largest: int
) -> GenerateConfig:
    field = f"recipes.{name}"
    overlay = variant.model_dump(exclude={"patch"}, exclude_unset=True, mode="json")
    overlay["num_notes"] = largest
    with naming(path, field):
        generate = GenerateConfig.model_validate(_section(base.generate, overlay))
        generate = generate.resolved(folder)
    if variant.patch:
        with naming(path, f"{field}.patch"):
            # num_notes stays the largest size: the corpus must hold every cell's notes.
            raw = {**generate.recipe.model_dump(mode="json"), **variant.patch}
            recipe = Recipe.model_validate({**raw, "num_notes": largest}).resolved(folder)
            check_recipe(recipe, where="recipe")
        generate = generate.model_copy(update={"recipe": recipe})
    return generate


def _annotator(
    path: Path, name: str, variant: AnnotatorVariant, base: RunConfig, folder: Path
) -> AnnotateConfig:
    field = f"annotators.{name}"
    overlay = variant.model_dump(exclude={"use_kb"}, exclude_unset=True, mode="json")
    raw = _section(base.annotate, overlay)
    if not variant.use_kb:
        raw["kb"] = None
    with naming(path, field):
        return AnnotateConfig.model_validate(raw).resolved(folder)


def _backbone(path: Path, name: str, value: str | None, folder: Path) -> str | None:
    """A backbone folder checked now (no config.json: not a model), not after generation."""
    if value is None:
        return None
    model = resolve_path(folder, Path(value))
    if not (model / "config.json").is_file():
        raise ConfigError(
            f"{path}: backbones.{name}: {model} is not a Hugging Face model folder (no config.json)"
        )
    return str(model)


def _check(grid: Grid) -> None:
    """Cross-field rules: a local folder, sizes fit the shards, and the dictionary baseline
    has lexicons."""
    if grid.config.storage is None and is_uri(grid.base.storage):
        raise ConfigError(f"{grid.path}: storage: {LOCAL_ONLY}, not {grid.base.storage}")
    for name, generate in grid.recipes.items():
        for size in grid.sizes:
            if size % generate.shard_rows:
                raise ConfigError(
                    f"{grid.path}: sizes: {size} is not a multiple of recipes.{name} "
                    f"shard_rows ({generate.shard_rows}); a size is a number of whole shards"
                )
    dictionary = grid.config.baselines.dictionary
    if dictionary is True and not any(a.kb for a in grid.annotators.values()):
        raise ConfigError(
            f"{grid.path}: baselines.dictionary: no annotator has a kb; give the lexicons "
            "here as {lexicons: {LABEL: [{path: ...}]}}"
        )
    supervised = grid.config.baselines.supervised
    if supervised is not None:
        data = resolve_path(grid.path.parent.resolve(), supervised.data.path)
        if "://" not in str(data) and not data.exists():
            raise ConfigError(f"{grid.path}: baselines.supervised.data: {data} does not exist")
    _check_self_training(grid)


def _check_self_training(grid: Grid) -> None:
    if grid.config.self_training is None:
        return
    kb = grid.base.annotate.kb if grid.base.annotate else None
    try:
        self_training(grid).check(kb)
    except ConfigError as err:
        raise ConfigError(f"{grid.path}: {err}") from None


def supervised_train(grid: Grid) -> TrainConfig | None:
    """The base's train section pointed at the real training data (paths resolved)."""
    supervised = grid.config.baselines.supervised
    if supervised is None:
        return None
    folder = grid.path.parent.resolve()
    update: dict[str, Any] = {"data": supervised.data}
    if supervised.dev is not None:
        update["dev"] = supervised.dev
    if supervised.epochs is not None:
        update["epochs"] = supervised.epochs
    train = grid.base.train.model_copy(update=update)
    return train.resolved(folder)


def self_training(grid: Grid) -> SelfTrainingConfig:
    """The grid's self-training section with its paths resolved against the grid file."""
    return grid.config.self_training.resolved(grid.path.parent.resolve())


def dictionary_kbs(grid: Grid) -> dict[str, KnowledgeBase]:
    """The dictionaries of the dictionary baseline, by row name: the grid's own, or each
    distinct annotator kb once (named after the first annotator that uses it)."""
    dictionary = grid.config.baselines.dictionary
    if dictionary is False:
        return {}
    if isinstance(dictionary, KnowledgeBase):
        folder = grid.path.parent.resolve()
        probe = AnnotateConfig(labels=dict.fromkeys(dictionary.lexicons, ""), kb=dictionary)
        return {"dictionary": probe.resolved(folder).kb}
    kbs: dict[str, KnowledgeBase] = {}
    for name, annotate in grid.annotators.items():
        if annotate.kb is not None and annotate.kb not in kbs.values():
            kbs[f"dictionary-{name}"] = annotate.kb
    return {"dictionary": next(iter(kbs.values()))} if len(kbs) == 1 else kbs
