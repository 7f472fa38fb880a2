"""`raysynth run`: every stage of DESIGN.md's data flow in order, from one config.

A stage without a config section, or whose input does not exist yet, is reported as skipped
with the reason, so the command always tells the truth about what it did.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raysynth.config import RunConfig
from raysynth.config_base import CorpusRef
from raysynth.corpus import ReadReport, parse_label_map, read_documents, write_documents
from raysynth.errors import ConfigError
from raysynth.runtime import ray_session
from raysynth.storage import RunStorage, is_uri


@dataclass
class StageReport:
    name: str
    status: str  # done | skipped
    detail: str = ""
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # rows in, ok, quarantined, tokens


@dataclass
class RunResult:
    storage: RunStorage
    stages: list[StageReport] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        """The run directory on this machine (a working copy when storage is a URI)."""
        return self.storage.local


def run(config: RunConfig) -> RunResult:
    """Every stage in order, in one Ray session; the manifest is rewritten (and, for a URI
    storage, the run mirrored) after each stage, so an interrupted run still says how far it
    got and a rerun anywhere resumes from there."""
    storage = config.run_storage()
    fetched = storage.pull()
    if storage.remote:
        print(f"[storage] {storage.remote}: {fetched} files fetched into {storage.local}")
    result = RunResult(storage)
    header = _manifest_header(config)
    _step(result, header, "data", lambda: _test_sets(config, storage.local))
    with ray_session():  # one Ray session serves every stage that needs one
        for name, stage in (
            ("generate", _generate),
            ("annotate", _annotate),
            ("train", _train),
            ("evaluate", _evaluate),
            ("self-train", _self_train),
        ):
            _step(result, header, name, lambda stage=stage: stage(config, storage))
    return result


def _step(result: RunResult, header: dict, name: str, work) -> None:
    started = time.monotonic()
    report = work()
    report.seconds = round(time.monotonic() - started, 2)
    result.stages.append(report)
    print(f"[{name}] {report.status} in {report.seconds:.1f}s: {report.detail}", flush=True)
    manifest = {**header, "stages": [asdict(s) for s in result.stages]}
    path = result.run_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    result.storage.push()


PACKAGES = ("raysynth", "ray", "torch", "transformers", "vllm", "llama_cpp_python", "pyarrow",
            "seqeval", "openai")  # fmt: skip


def _manifest_header(config: RunConfig) -> dict:
    """The config, its hash (two runs with the same hash ran the same settings) and the
    versions of the packages that decide the results."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    dumped = config.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()
    return {
        "config": dumped,
        "config_sha256": digest,
        "versions": {name: installed(name) for name in PACKAGES},
    }


def _test_sets(config: RunConfig, run_dir: Path) -> StageReport:
    """Each real test set read once and stored as a `documents` Parquet file in the run."""
    report = StageReport("data", "done")
    for test in config.test_sets:
        out = run_dir / "test" / f"{test.name}.parquet"
        read = ReadReport()
        docs = read_documents(
            test.path,
            test.format,
            scheme=test.scheme,
            label_map=parse_label_map(test.label_map),
            report=read,
        )
        write_documents(docs, out, "parquet")
        report.outputs[test.name] = str(out)
        report.detail += f"{test.name}: {read.summary()}; "
    report.detail = report.detail.rstrip("; ") or "no test sets configured"
    return report


def _mirror_each_shard(storage: RunStorage):
    """An `on_shard` callback: the shard just written goes to the URI at once (the stages'
    shard writer runs on the driver's node, so the file is in the local copy)."""
    return lambda _summary: storage.push()


def _generate(config: RunConfig, storage: RunStorage) -> StageReport:
    if config.generate is None:
        return StageReport("generate", "skipped", "no generate section in the config")
    from raysynth.generate.stage import generate

    result = generate(
        config.generate, storage.local, on_shard=_mirror_each_shard(storage), storage=storage
    )
    c, stats = result.counts, result.stats
    return StageReport(
        "generate",
        "done",
        f"{c['rows']} notes: {c['ok']} ok, {c['failed']} failed, {c['removed']} removed; "
        f"{len(result.shards_written)} shards written, {len(result.shards_skipped)} skipped; "
        f"mean {stats['mean_words']} words, duplicate rate {stats['duplicate_rate']}",
        outputs={"notes": str(result.notes_dir), "stats": str(result.stats_path)},
        counts={**c, **stats["tokens"]},
    )


def _annotate(config: RunConfig, storage: RunStorage) -> StageReport:
    if config.annotate is None:
        return StageReport("annotate", "skipped", "no annotate section in the config")
    if config.annotate.input is None and not (storage.local / "generate" / "notes").is_dir():
        return StageReport("annotate", "skipped", "no notes (the generate stage writes them)")
    from raysynth.annotate.job import annotate_run

    result = annotate_run(
        config.annotate, storage.local, on_shard=_mirror_each_shard(storage), storage=storage
    )
    c = result.counts
    return StageReport(
        "annotate",
        "done",
        f"{c['rows']} notes: {c['ok']} ok, {c['quarantined']} quarantined; "
        f"{c['answers']} answers, {c['failed_answers']} unusable; {c['mentions']} mentions, "
        f"{c['hallucinated']} not in the text; "
        f"{len(result.shards_written)} shards written, {len(result.shards_skipped)} skipped",
        outputs={"annotations": str(result.out_dir), "summary": str(result.summary_path)},
        counts=dict(c),
    )


def _train(config: RunConfig, storage: RunStorage) -> StageReport:
    if config.train is None:
        return StageReport("train", "skipped", "no train section in the config")
    run_dir = storage.local
    source = config.train.data.path if config.train.data else run_dir / "annotations"
    if "://" not in str(source) and not Path(source).exists():
        return StageReport(
            "train",
            "skipped",
            f"no training data at {source} (the annotate stage writes it; or set train.data)",
        )
    key = fingerprint(config.train, [source])
    if finished(run_dir, "train", key):
        return StageReport("train", "skipped", "already done with this config and data")
    from raysynth.train.fit import train

    trained = train(config.train, run_dir, storage=storage)
    mark_finished(run_dir, "train", key)
    best, counts = trained.metrics["best"], trained.metrics["counts"]
    source_counts = counts["source"]
    return StageReport(
        "train",
        "done",
        f"dev F1 {best['eval_f1']:.4f} at step {best['step']}",
        outputs={"model": str(trained.model_dir), "metrics": str(trained.metrics_path)},
        counts={
            "rows": source_counts["rows"],
            "ok": source_counts["used"],
            "quarantined": source_counts["quarantined"],
            "train_documents": counts["train_documents"],
            "dev_documents": counts["dev_documents"],
            "train_windows": counts["train_windows"],
        },
    )


def _evaluate(config: RunConfig, storage: RunStorage) -> StageReport:
    if not config.test_sets:
        return StageReport("evaluate", "skipped", "no test_sets in the config")
    run_dir = storage.local
    model = config.evaluate.model or str(run_dir / "model")
    if not (Path(model) / "config.json").is_file():
        return StageReport(
            "evaluate",
            "skipped",
            f"no model at {model} (the train stage writes it; or set evaluate.model)",
        )
    key = fingerprint(config.evaluate, [Path(model), *(t.path for t in config.test_sets)])
    if finished(run_dir, "evaluate", key):
        return StageReport("evaluate", "skipped", "already done with this config and model")
    from raysynth.evaluate.job import evaluate

    kb = config.annotate.kb if config.annotate else None
    results = evaluate(config.evaluate, model, config.test_sets, run_dir, storage=storage, kb=kb)
    mark_finished(run_dir, "evaluate", key)
    return StageReport(
        "evaluate",
        "done",
        "; ".join(f"{r.name}: F1 {r.f1_strict:.4f}" for r in results),
        outputs={f"{r.name} report": str(r.report["markdown"]) for r in results},
        counts={f"{r.name}_{k}": v for r in results for k, v in r.counts.items()},
    )


def _self_train(config: RunConfig, storage: RunStorage) -> StageReport:
    """Each round in `<run>/self-training/round-<k>/`: the teacher's labels of the text
    (`labels/`), the student's training set (`train-data/`, links), its model and reports.
    A round done with the same settings, teacher, text and files is not run again."""
    selftrain = config.self_training
    if selftrain is None:
        return StageReport("self-train", "skipped", "no self_training section in the config")
    run_dir = storage.local
    teacher = run_dir / "model"
    if not (teacher / "config.json").is_file():
        return StageReport("self-train", "skipped", f"no model at {teacher} (train writes it)")
    synthetic = Path(config.train.data.path) if config.train.data else run_dir / "annotations"
    if selftrain.synthetic and not any(synthetic.glob("*.parquet")):
        raise ConfigError(
            f"self_training.synthetic: no annotation shards in {synthetic} for the students "
            "to train on; or set synthetic: false"
        )
    report, ran = StageReport("self-train", "done"), 0
    for k in range(1, selftrain.rounds + 1):
        out = run_dir / "self-training" / f"round-{k}"
        key = _round_key(config, teacher)
        if finished(out, "round", key):
            report.detail += f"round {k}: already done with these settings; "
        else:
            report.detail += f"round {k}: {_round(config, out, teacher, synthetic)}; "
            mark_finished(out, "round", key)
            ran += 1
        teacher = out / "model"
        report.outputs[f"round {k} model"] = str(teacher)
        for test in config.test_sets:
            report.outputs[f"round {k} {test.name} report"] = str(
                out / "report" / test.name / "report.md"
            )
    report.status = "done" if ran else "skipped"
    report.detail = report.detail.rstrip("; ")
    return report


def _round_key(config: RunConfig, teacher: Path) -> str:
    """What a round's labels, model and reports depend on: every setting that reaches them
    (not `rounds`: a longer chain keeps its first rounds) and the files they read."""
    selftrain = config.self_training
    kb = config.annotate.kb if config.annotate else None
    settings = {
        "self_training": selftrain.model_dump(mode="json", exclude={"rounds"}),
        "train": config.train.model_dump(mode="json"),
        "evaluate": config.evaluate.model_dump(mode="json"),
        "kb": kb.model_dump(mode="json") if kb else None,
        "test_sets": [t.model_dump(mode="json") for t in config.test_sets],
    }
    files = [teacher, selftrain.text.path, *(f.path for f in selftrain.negatives)]
    files += [f.path for group in (kb.lexicons.values() if kb else ()) for f in group]
    return fingerprint(settings, [*files, *(t.path for t in config.test_sets)])


def _round(config: RunConfig, out: Path, teacher: Path, synthetic: Path) -> str:
    """One student: labelled, trained and evaluated in `out`; what it did, in one line."""
    from raysynth.evaluate.job import evaluate
    from raysynth.selftrain import student_training_set
    from raysynth.train.fit import train

    kb = config.annotate.kb if config.annotate else None
    labelled = student_training_set(
        config.self_training, config.evaluate, teacher, kb, out / "labels", synthetic,
        out / "train-data",
    )  # fmt: skip
    data = CorpusRef(path=out / "train-data", format="parquet")
    train(config.train.model_copy(update={"data": data}), out)
    results = evaluate(config.evaluate, str(out / "model"), config.test_sets, out, kb=kb)
    scores = ", ".join(f"{r.name}: F1 {r.f1_strict:.4f}" for r in results)
    return (
        f"{labelled.mentions} mentions labelled in {labelled.documents} documents "
        f"(negatives dropped in {labelled.with_negatives}, voted out in "
        f"{labelled.with_voted_out}); {scores or 'no test sets'}"
    )


# --- finished stages ----------------------------------------------------------------------
# Generate and annotate resume shard by shard; train and evaluate have no shards, so a rerun
# skips them when their config section and the files they read are what they last ran on.


def fingerprint(section: Any, inputs: list[Path | str]) -> str:
    """Hash of a config section (or a dict of them) and the content of every file under
    `inputs`, named relative to its input: the same after the run directory is fetched from
    its storage onto another machine, where paths and mtimes differ. URIs count by name only
    (hashing them would download them)."""
    dumped = section if isinstance(section, dict) else section.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode())
    for root in inputs:
        if is_uri(root):
            digest.update(str(root).encode())
            continue
        root = Path(root)
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for f in files:
            digest.update(f"{root.name}/{f.relative_to(root) if f != root else ''}".encode())
            with f.open("rb") as handle:
                # Chunked (hashlib.file_digest needs Python 3.11): models weigh gigabytes.
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def _marker(run_dir: Path, stage: str) -> Path:
    return run_dir / "stages" / f"{stage}.done"


def finished(run_dir: Path, stage: str, key: str) -> bool:
    path = _marker(run_dir, stage)
    return path.is_file() and path.read_text(encoding="utf-8") == key


def mark_finished(run_dir: Path, stage: str, key: str) -> None:
    _marker(run_dir, stage).parent.mkdir(exist_ok=True)
    _marker(run_dir, stage).write_text(key, encoding="utf-8")
