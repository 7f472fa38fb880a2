"""The plan of a grid: which corpora, annotations, trainings and baselines it takes, and where
each one lives. This is the one place that decides what cells share:

- one corpus per (recipe, seed): note_ids do not depend on `num_notes` and shard k holds
  notes k*shard_rows.., so size N is the first N/shard_rows shards of it, and a run
  generates only as far as the largest size its pending cells need (`notes_needed`): `--only`
  a small cell does not pay for the grid's largest, and a later, larger run extends it;
- one annotation per (corpus, annotator), serving every size and backbone the same way: a
  cell trains on a folder of links to its first N/shard_rows annotation shards;
- every annotation of the experiment runs in the experiment folder, so they share one LLM
  response cache (`<experiment>/llm-cache`).

Folders (under `<storage>/<name>/`): `corpora/<corpus>/generate/`, `annotations/<corpus>/
<annotator>/annotations/`, `cells/<cell>/{model,report}/`, `baselines/<baseline>/`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raysynth.annotate.config import AnnotateConfig, KnowledgeBase
from raysynth.config_base import CorpusRef
from raysynth.errors import ConfigError
from raysynth.experiment.config import Grid, dictionary_kbs, supervised_train
from raysynth.generate.config import GenerateConfig
from raysynth.generate.prompts import shard_name
from raysynth.train.config import TrainConfig


def digest(value: Any) -> str:
    """sha256 of a JSON-able value: two jobs with the same digest ran the same settings."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Corpus:
    """One generated corpus (recipe, seed); `generate` asks for the grid's largest size."""

    name: str
    recipe: str
    seed: int | None
    generate: GenerateConfig
    run_dir: Path

    def note_shards(self, size: int) -> list[Path]:
        """The note shards holding the first `size` notes."""
        count = size // self.generate.shard_rows
        return [self.run_dir / "generate" / "notes" / shard_name(i) for i in range(count)]

    def generate_at(self, size: int) -> GenerateConfig:
        """The corpus's generate settings for its first `size` notes."""
        recipe = self.generate.recipe.model_copy(update={"num_notes": size})
        return self.generate.model_copy(update={"recipe": recipe, "num_notes": size})

    def settings(self, size: int) -> dict[str, Any]:
        """What decides the first `size` notes (not how many more the corpus has)."""
        return self.generate_at(size).model_dump(mode="json")


@dataclass(frozen=True)
class Annotation:
    """One annotator's labels for one corpus."""

    corpus: Corpus
    annotator: str
    config: AnnotateConfig
    folder: Path

    @property
    def out_dir(self) -> Path:
        return self.folder / "annotations"

    @property
    def digest(self) -> str:
        """What decides the labels: a stored annotation made with another digest is stale,
        even where its shards exist. The number of notes is left out (no note depends on
        it), so a larger size adds shards to the same annotation."""
        generate = self.corpus.generate.model_dump(
            mode="json", exclude={"num_notes": True, "recipe": {"num_notes"}}
        )
        return digest({"generate": generate, "annotate": self.config.model_dump(mode="json")})

    def subset(self, size: int) -> Path:
        """Folder of links to the annotation shards of the first `size` notes."""
        return self.folder / "subsets" / f"n{size}"


@dataclass(frozen=True)
class Cell:
    """One training + evaluation: a grid cell, a self-trained student of one (its teacher's
    annotation and size), or the supervised baseline (no annotation)."""

    name: str
    kind: str  # synthetic | self-trained | supervised
    backbone: str
    train: TrainConfig
    run_dir: Path
    digest: str  # everything: a finished cell with this digest is skipped
    train_digest: str  # what the model depends on: same, and only evaluation is redone
    size: int | None = None
    annotation: Annotation | None = None
    teacher: Cell | None = None

    @property
    def recipe(self) -> str | None:
        return self.annotation.corpus.recipe if self.annotation else None

    @property
    def seed(self) -> int | None:
        return self.annotation.corpus.seed if self.annotation else None

    @property
    def annotator(self) -> str | None:
        return self.annotation.annotator if self.annotation else None

    @property
    def rounds(self) -> int:
        """Rounds of self-training behind the model: 0 for a cell, 2 for `X-self-self`."""
        return self.teacher.rounds + 1 if self.teacher else 0


@dataclass(frozen=True)
class ScoredBaseline:
    """A baseline scored without training: the dictionary, or the annotator LLM."""

    name: str
    kind: str  # dictionary | llm
    run_dir: Path
    digest: str
    kb: KnowledgeBase | None = None
    annotator: str | None = None
    annotate: AnnotateConfig | None = None
    limit: int | None = None


@dataclass(frozen=True)
class Plan:
    grid: Grid
    corpora: list[Corpus]
    annotations: list[Annotation]
    cells: list[Cell]
    baselines: list[ScoredBaseline]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cells] + [b.name for b in self.baselines]

    def only(self, names: list[str] | None) -> Plan:
        """The plan restricted to the named cells and baselines (and what they need)."""
        if not names:
            return self
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise ConfigError(f"--only: no cell or baseline named {', '.join(unknown)}")
        wanted = set(names)
        for cell in reversed(self.cells):  # a student comes after its teacher
            if cell.name in wanted and cell.teacher is not None:
                wanted.add(cell.teacher.name)
        cells = [c for c in self.cells if c.name in wanted]
        needed = {c.annotation.folder for c in cells if c.annotation}
        annotations = [a for a in self.annotations if a.folder in needed]
        corpora = {a.corpus.run_dir for a in annotations}
        return replace(
            self,
            corpora=[c for c in self.corpora if c.run_dir in corpora],
            annotations=annotations,
            cells=cells,
            baselines=[b for b in self.baselines if b.name in names],
        )


def notes_needed(cells: list[Cell]) -> dict[Path, int]:
    """Annotation folder -> how many notes of its corpus these cells train on (a student
    trains on its teacher's)."""
    needed: dict[Path, int] = {}
    for cell in cells:
        if cell.annotation is not None and cell.size is not None:
            folder = cell.annotation.folder
            needed[folder] = max(needed.get(folder, 0), cell.size)
    return needed


def corpus_notes(corpus: Corpus, annotations: list[Annotation], needed: dict[Path, int]) -> int:
    """How many notes of `corpus` its annotations need (`notes_needed`)."""
    return max(needed[a.folder] for a in annotations if a.corpus.run_dir == corpus.run_dir)


def build_plan(grid: Grid) -> Plan:
    """Every job of the grid, each once, in the order they must run."""
    root = grid.exp_dir
    corpora = [_corpus(grid, recipe, seed, root) for seed in grid.seeds for recipe in grid.recipes]
    annotations = [
        Annotation(
            corpus, name, config, root / "annotations" / corpus.name / name
        )
        for corpus in corpora
        for name, config in grid.annotators.items()
    ]  # fmt: skip
    cells = [
        _cell(grid, annotation, size, backbone)
        for annotation in annotations
        for size in grid.sizes
        for backbone in grid.backbones
    ]
    cells += _self_trained(grid, cells)
    cells += _supervised(grid)
    return Plan(grid, corpora, annotations, cells, _dictionaries(grid) + _llm(grid))


def _corpus(grid: Grid, recipe: str, seed: int | None, root: Path) -> Corpus:
    generate = grid.recipes[recipe]
    name = recipe
    if seed is not None:
        generate = generate.model_copy(
            update={"recipe": generate.recipe.model_copy(update={"seed": seed})}
        )
        name = f"{recipe}-s{seed}"
    return Corpus(name, recipe, seed, generate, root / "corpora" / name)


def _evaluation(grid: Grid) -> dict[str, Any]:
    return {
        "evaluate": grid.base.evaluate.model_dump(mode="json"),
        "test_sets": [t.model_dump(mode="json") for t in grid.base.test_sets],
    }


def _cell(grid: Grid, annotation: Annotation, size: int, backbone: str) -> Cell:
    corpus = annotation.corpus
    update: dict[str, Any] = {
        "data": CorpusRef(path=annotation.subset(size), format="parquet"),
        "model": grid.backbones[backbone],
    }
    if corpus.seed is not None:
        update["seed"] = corpus.seed
    train = grid.base.train.model_copy(update=update)
    name = f"{corpus.recipe}-n{size}-{annotation.annotator}-{backbone}"
    if corpus.seed is not None:
        name += f"-s{corpus.seed}"
    settings = {
        "generate": corpus.settings(size),
        "annotate": annotation.config.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
    }
    run_dir = grid.exp_dir / "cells" / name
    everything = digest({**settings, **_evaluation(grid)})
    return Cell(
        name, "synthetic", backbone, train, run_dir, everything, digest(settings), size,
        annotation,
    )  # fmt: skip


def _self_trained(grid: Grid, cells: list[Cell]) -> list[Cell]:
    """One student per teacher cell, trained where the teacher was (same train settings) on
    the text the teacher labelled, plus the teacher's synthetic notes unless told not to. A
    teacher may be a student listed before it: `X-self` teaches `X-self-self`, a second
    round."""
    selftrain = grid.config.self_training
    if selftrain is None:
        return []
    kb = grid.base.annotate.kb if grid.base.annotate else None
    by_name = {c.name: c for c in cells}
    students = []
    for teacher_name in selftrain.teachers:
        teacher = by_name.get(teacher_name)
        if teacher is None:
            raise ConfigError(
                f"{grid.path}: self_training.teachers: no cell named {teacher_name} before it "
                "(raysynth experiment GRID --plan lists them)"
            )
        name = f"{teacher.name}-self"
        run_dir = grid.exp_dir / "cells" / name
        train = teacher.train.model_copy(
            update={"data": CorpusRef(path=run_dir / "train-data", format="parquet")}
        )
        settings = {
            "teacher": teacher.train_digest,
            "self_training": selftrain.model_dump(mode="json", exclude={"teachers"}),
            "labelled_with": _evaluation(grid)["evaluate"],
            "kb": kb.model_dump(mode="json") if kb else None,
            "train": train.model_dump(mode="json"),
        }
        everything = digest({**settings, **_evaluation(grid)})
        students.append(
            Cell(
                name,
                "self-trained",
                teacher.backbone,
                train,
                run_dir,
                everything,
                digest(settings),
                teacher.size,
                teacher.annotation,
                teacher,
            )
        )
        by_name[name] = students[-1]
    return students


def _supervised(grid: Grid) -> list[Cell]:
    base = supervised_train(grid)
    if base is None:
        return []
    chosen = grid.config.baselines.supervised.backbones or list(grid.backbones)
    cells = []
    for backbone in chosen:
        train = base.model_copy(update={"model": grid.backbones[backbone]})
        settings = {"train": train.model_dump(mode="json")}
        name = f"supervised-{backbone}"
        run_dir = grid.exp_dir / "baselines" / name
        everything = digest({**settings, **_evaluation(grid)})
        cells.append(
            Cell(name, "supervised", backbone, train, run_dir, everything, digest(settings))
        )
    return cells


def _dictionaries(grid: Grid) -> list[ScoredBaseline]:
    evaluation = _evaluation(grid)
    return [
        ScoredBaseline(
            name,
            "dictionary",
            grid.exp_dir / "baselines" / name,
            digest({"kb": kb.model_dump(mode="json"), **evaluation}),
            kb=kb,
        )
        for name, kb in dictionary_kbs(grid).items()
    ]


def _llm(grid: Grid) -> list[ScoredBaseline]:
    llm = grid.config.baselines.llm
    if llm is None:
        return []
    baselines = []
    for annotator in llm.annotators or list(grid.annotators):
        config = grid.annotators[annotator]
        settings = {"annotate": config.model_dump(mode="json"), "limit": llm.limit,
                    **_evaluation(grid)}  # fmt: skip
        name = f"llm-{annotator}"
        baselines.append(
            ScoredBaseline(
                name,
                "llm",
                grid.exp_dir / "baselines" / name,
                digest(settings),
                annotator=annotator,
                annotate=config,
                limit=llm.limit,
            )
        )
    return baselines


def describe_plan(plan: Plan) -> str:
    """What a run would do, shared stages first: the output of `--plan`."""
    lines = [f"experiment {plan.grid.name} in {plan.grid.exp_dir}"]
    needed = notes_needed(plan.cells)
    lines.append(f"{len(plan.corpora)} generation(s):")
    lines += [
        f"  {c.name}: {corpus_notes(c, plan.annotations, needed)} notes" for c in plan.corpora
    ]
    lines.append(f"{len(plan.annotations)} annotation(s):")
    lines += [
        f"  {a.corpus.name} / {a.annotator}: {needed[a.folder]} notes" for a in plan.annotations
    ]
    lines.append(f"{len(plan.cells)} training(s) + evaluation(s):")
    lines += [f"  {c.name}" for c in plan.cells]
    lines.append(f"{len(plan.baselines)} scored baseline(s):")
    lines += [f"  {b.name}" for b in plan.baselines]
    return "\n".join(lines)
