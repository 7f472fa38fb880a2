"""Running a plan with the stage functions `raysynth run` uses, in one Ray session.

Resume works at two levels. Stages resume by shard (generation and annotation skip finished
shards, a training resumes from its checkpoints). A cell or baseline writes a marker with the
digest of its settings when it starts and its result when it ends: a rerun skips a finished
job with the same digest, and starts over a job whose settings changed (its folder is
removed, so no old checkpoint or prediction mixes in). Only the stages a pending cell needs
run, so a finished grid reruns in seconds.

A cell that fails (say, a corpus with no usable notes at the smallest size) is reported and
the grid goes on; the command exits non-zero at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysynth.dataset import scored_ref
from raysynth.errors import RaysynthError
from raysynth.experiment.plan import (
    Annotation,
    Cell,
    Corpus,
    Plan,
    ScoredBaseline,
    corpus_notes,
    notes_needed,
)
from raysynth.runtime import ray_session

MARKER = "experiment.json"


@dataclass
class Outcome:
    """What one job did this time: done, skipped (finished earlier) or failed."""

    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class ExperimentResult:
    exp_dir: Path
    outcomes: list[Outcome] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def _marker(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MARKER
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def previous(run_dir: Path, digest: str, train_digest: str | None = None) -> dict[str, Any] | None:
    """The stored result of a finished job with these settings, else None. A folder left by
    other settings is removed, so no old checkpoint or prediction mixes in; unless only the
    evaluation changed (same `train_digest`): then the model is kept and only scored again."""
    marker = _marker(run_dir)
    if not marker:
        return None
    if marker.get("digest") == digest:
        return marker.get("result")
    if train_digest is None or marker.get("train_digest") != train_digest:
        print(f"[experiment] {run_dir.name}: settings changed; starting it again", flush=True)
        shutil.rmtree(run_dir)
    return None


def _mark(run_dir: Path, **fields: Any) -> None:
    """Update the job's marker (written whole, so a reader never sees half of it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = {**_marker(run_dir), **fields}
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2), encoding="utf-8")
    os.replace(tmp, run_dir / MARKER)


def _timed(outcomes: list[Outcome], name: str, work: Callable[[], str]) -> None:
    """Run one job, print and record what it did; a raysynth error fails this job only."""
    started = time.monotonic()
    try:
        status, detail = "done", work()
    except RaysynthError as err:
        status, detail = "failed", str(err)
    outcome = Outcome(name, status, round(time.monotonic() - started, 1), detail)
    outcomes.append(outcome)
    print(f"[experiment] {name}: {status} in {outcome.seconds:.1f}s; {detail}", flush=True)


def run_plan(plan: Plan, only: list[str] | None = None) -> ExperimentResult:
    """Run the plan (or the `only` named jobs of it), then write the results of every
    finished job of the whole plan."""
    from raysynth.experiment.report import collect_rows, write_results

    root = plan.grid.exp_dir
    root.mkdir(parents=True, exist_ok=True)
    result = ExperimentResult(root)
    selected = plan.only(only)
    pending = [c for c in selected.cells if previous(c.run_dir, c.digest, c.train_digest) is None]
    to_train = [c for c in pending if _marker(c.run_dir).get("trained") is None]
    needed = notes_needed(to_train)
    annotations = [a for a in selected.annotations if a.folder in needed]
    corpora = {a.corpus.name: a.corpus for a in annotations}
    with ray_session():
        for corpus in corpora.values():
            size = corpus_notes(corpus, annotations, needed)
            _timed(
                result.outcomes, f"generate {corpus.name}", lambda c=corpus, n=size: _generate(c, n)
            )
        for ann in annotations:
            name = f"annotate {ann.corpus.name}/{ann.annotator}"
            _timed(result.outcomes, name, lambda a=ann: _annotate(a, root, needed[a.folder]))
        for cell in selected.cells:
            _run_cell(result.outcomes, cell, plan)
        for baseline in selected.baselines:
            _run_baseline(result.outcomes, baseline, plan)
    result.rows = collect_rows(plan)
    result.paths = write_results(result.rows, root)
    return result


def _generate(corpus: Corpus, size: int) -> str:
    from raysynth.generate.stage import generate

    done = generate(corpus.generate_at(size), corpus.run_dir)
    c = done.counts
    return (
        f"{c['rows']} notes ({c['ok']} ok, {c['failed']} failed, {c['removed']} removed); "
        f"{len(done.shards_written)} shards written, {len(done.shards_skipped)} skipped"
    )


def _annotate(annotation: Annotation, root: Path, size: int) -> str:
    """Annotate the corpus's first `size` notes; the experiment folder is the run folder, so
    every annotation uses the one response cache there."""
    from raysynth.annotate.stage import annotate

    inputs = annotation.corpus.note_shards(size)
    missing = [p.name for p in inputs if not p.is_file()]
    if missing:
        raise RaysynthError(f"no notes {', '.join(missing)}: the generate stage failed")
    _start_annotation(annotation, annotation.digest)
    done = annotate(annotation.config, inputs, annotation.out_dir, root, real_text=False)
    c = done.counts
    return (
        f"{c['rows']} notes ({c['ok']} ok, {c['quarantined']} quarantined); "
        f"{c['hallucinated']} of {c['mentions']} mentions not in the text; "
        f"{len(done.shards_written)} shards written, {len(done.shards_skipped)} skipped"
    )


def _start_annotation(annotation: Annotation, digest: str) -> None:
    """The annotate stage resumes by shard and cannot tell a shard labelled by other
    settings: labels left by another digest (or by a version that kept none) are removed
    first. The response cache is in the experiment folder, so no LLM answer is lost."""
    if annotation.folder.exists() and _marker(annotation.folder).get("digest") != digest:
        print(
            f"[experiment] annotation {annotation.corpus.name}/{annotation.annotator}: "
            "settings changed; labelling it again",
            flush=True,
        )
        shutil.rmtree(annotation.folder)
    _mark(annotation.folder, digest=digest)


def link_subset(annotation: Annotation, size: int) -> Path:
    """A folder of relative links to the annotation shards of the first `size` notes: the
    training set of a size-`size` cell, without copying a row."""
    folder = annotation.subset(size)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for note_shard in annotation.corpus.note_shards(size):
        target = annotation.out_dir / note_shard.name
        if not target.is_file():
            raise RaysynthError(f"annotations: {target} is missing; the annotate stage failed")
        (folder / note_shard.name).symlink_to(os.path.relpath(target, folder))
    return folder


def _run_cell(outcomes: list[Outcome], cell: Cell, plan: Plan) -> None:
    if previous(cell.run_dir, cell.digest, cell.train_digest) is not None:
        outcomes.append(Outcome(cell.name, "skipped", detail="finished with these settings"))
        print(f"[experiment] {cell.name}: skipped (finished with these settings)", flush=True)
        return
    _timed(outcomes, cell.name, lambda: _train_and_evaluate(cell, plan))


def _train_and_evaluate(cell: Cell, plan: Plan) -> str:
    """Train (unless this model was trained already) and evaluate on every test set."""
    from raysynth.evaluate.job import evaluate

    trained = _marker(cell.run_dir).get("trained")
    _mark(cell.run_dir, digest=cell.digest, train_digest=cell.train_digest, result=None)
    if trained is None:
        trained = _train(cell, plan)
        _mark(cell.run_dir, trained=trained)
    base = plan.grid.base
    model = str(cell.run_dir / "model")
    kb = base.annotate.kb if base.annotate else None
    evaluations = evaluate(base.evaluate, model, base.test_sets, cell.run_dir, kb=kb)
    reports = {e.name: str(e.report["json"]) for e in evaluations}
    _mark(cell.run_dir, result={**trained, "reports": reports})
    return "; ".join(f"{e.name}: F1 {e.f1_strict:.4f}" for e in evaluations)


def _train(cell: Cell, plan: Plan) -> dict[str, Any]:
    from raysynth.train.fit import train

    labelled: dict[str, int] = {}
    if cell.teacher is not None:
        labelled = _self_training_set(cell, plan)
    elif cell.annotation is not None:
        link_subset(cell.annotation, cell.size)
    trained = train(cell.train, cell.run_dir)
    return {
        "train_documents": trained.metrics["counts"]["train_documents"],
        "dev_f1": trained.metrics["best"]["eval_f1"],
        **labelled,
    }


def _self_training_set(cell: Cell, plan: Plan) -> dict[str, int]:
    """The teacher's labels of the real text, linked beside the teacher's synthetic
    training shards (unless `self_training.synthetic` is false) into `train.data`."""
    from raysynth.experiment.config import self_training
    from raysynth.selftrain import student_training_set

    teacher = cell.teacher.run_dir / "model"
    if not (teacher / "config.json").is_file():
        raise RaysynthError(f"teacher {cell.teacher.name} has no model: its training failed")
    selftrain = self_training(plan.grid)
    base = plan.grid.base
    kb = base.annotate.kb if base.annotate else None
    synthetic = link_subset(cell.annotation, cell.size) if selftrain.synthetic else None
    labelled = student_training_set(
        selftrain, base.evaluate, teacher, kb, cell.run_dir / "labels", synthetic,
        Path(cell.train.data.path),
    )  # fmt: skip
    print(
        f"[experiment] {cell.name}: {cell.teacher.name} labelled {labelled.mentions} mentions "
        f"in {labelled.documents} documents of {selftrain.text.path} (negatives dropped in "
        f"{labelled.with_negatives}, labels voted out in {labelled.with_voted_out})",
        flush=True,
    )
    return {
        "labelled_documents": labelled.documents,
        "labelled_mentions": labelled.mentions,
        "documents_with_negatives": labelled.with_negatives,
        **({"documents_with_voted_out": labelled.with_voted_out} if selftrain.consistency else {}),
    }


def _run_baseline(outcomes: list[Outcome], baseline: ScoredBaseline, plan: Plan) -> None:
    if previous(baseline.run_dir, baseline.digest) is not None:
        outcomes.append(Outcome(baseline.name, "skipped", detail="finished with these settings"))
        print(f"[experiment] {baseline.name}: skipped (finished with these settings)", flush=True)
        return
    work = _dictionary if baseline.kind == "dictionary" else _llm
    _timed(outcomes, baseline.name, lambda: work(baseline, plan))


def _dictionary(baseline: ScoredBaseline, plan: Plan) -> str:
    """Greedy longest-match of the lexicons, scored like a model (kb.dictionary_baseline)."""
    from raysynth.annotate.job import read_corpus
    from raysynth.annotate.kb import DictionaryMatcher, dictionary_baseline

    matcher = DictionaryMatcher.from_lexicons(baseline.kb.lexicons, baseline.kb.filters)
    abbreviations = plan.grid.base.evaluate.abbreviations
    scores = {}
    for test in plan.grid.base.test_sets:
        docs = read_corpus(scored_ref(test, plan.grid.base.evaluate.label_map))
        result = dictionary_baseline(docs, matcher, abbreviations)
        scores[test.name] = {"dictionary": result.scores.to_dict()}
    _mark(baseline.run_dir, digest=baseline.digest, result={"scores": scores})
    return _f1_summary(scores)


def _llm(baseline: ScoredBaseline, plan: Plan) -> str:
    """The annotator's strategies, each alone, on the first `limit` test documents."""
    from raysynth.annotate.job import evaluate_annotator, read_corpus

    abbreviations = plan.grid.base.evaluate.abbreviations
    scores = {}
    for test in plan.grid.base.test_sets:
        docs = read_corpus(scored_ref(test, plan.grid.base.evaluate.label_map), baseline.limit)
        results = evaluate_annotator(
            baseline.annotate, docs, baseline.run_dir / test.name, abbreviations=abbreviations
        )
        scores[test.name] = {r.strategy: r.scores.to_dict() for r in results}
    _mark(baseline.run_dir, digest=baseline.digest, result={"scores": scores})
    return _f1_summary(scores)


def _f1_summary(scores: dict[str, dict[str, dict]]) -> str:
    return "; ".join(
        f"{test} {variant}: F1 {s['seqeval_strict']['overall']['f1']:.4f}"
        for test, variants in scores.items()
        for variant, s in variants.items()
    )
