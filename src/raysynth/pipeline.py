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
from raysynth.corpus import ReadReport, parse_label_map, read_documents, write_documents
from raysynth.runtime import ray_session


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
    run_dir: Path
    stages: list[StageReport] = field(default_factory=list)


def run(config: RunConfig) -> RunResult:
    """Every stage in order, in one Ray session; the manifest is rewritten after each stage,
    so an interrupted run still says how far it got."""
    run_dir = config.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(run_dir=run_dir)
    header = _manifest_header(config)
    _step(result, header, "data", lambda: _test_sets(config, run_dir))
    with ray_session():  # one Ray session serves every stage that needs one
        for name, stage in (
            ("generate", _generate),
            ("annotate", _annotate),
            ("train", _train),
            ("evaluate", _evaluate),
        ):
            _step(result, header, name, lambda stage=stage: stage(config, run_dir))
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


def _generate(config: RunConfig, run_dir: Path) -> StageReport:
    if config.generate is None:
        return StageReport("generate", "skipped", "no generate section in the config")
    from raysynth.generate.stage import generate

    result = generate(config.generate, run_dir)
    c, stats = result.counts, result.stats
    return StageReport(
        "generate",
        "done",
        f"{c['rows']} notes: {c['ok']} ok, {c['failed']} failed, {c['removed']} removed; "
        f"{len(result.shards_written)} shards written, {len(result.shards_skipped)} skipped; "
        f"mean {stats['mean_words']} words, duplicate rate {stats['duplicate_rate']}",
        outputs={"notes": str(result.notes_dir), "stats": str(result.stats_path)},
        counts=dict(c),
    )


def _annotate(config: RunConfig, run_dir: Path) -> StageReport:
    if config.annotate is None:
        return StageReport("annotate", "skipped", "no annotate section in the config")
    if config.annotate.input is None and not (run_dir / "generate" / "notes").is_dir():
        return StageReport("annotate", "skipped", "no notes (the generate stage writes them)")
    from raysynth.annotate.job import annotate_run

    result = annotate_run(config.annotate, run_dir)
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


def _train(config: RunConfig, run_dir: Path) -> StageReport:
    if config.train is None:
        return StageReport("train", "skipped", "no train section in the config")
    source = config.train.data.path if config.train.data else run_dir / "annotations"
    if "://" not in str(source) and not Path(source).exists():
        return StageReport(
            "train",
            "skipped",
            f"no training data at {source} (the annotate stage writes it; or set train.data)",
        )
    key = fingerprint(config.train, [Path(source)])
    if finished(run_dir, "train", key):
        return StageReport("train", "skipped", "already done with this config and data")
    from raysynth.train.fit import train

    trained = train(config.train, run_dir)
    mark_finished(run_dir, "train", key)
    best = trained.metrics["best"]
    return StageReport(
        "train",
        "done",
        f"dev F1 {best['eval_f1']:.4f} at step {best['step']}",
        outputs={"model": str(trained.model_dir), "metrics": str(trained.metrics_path)},
    )


def _evaluate(config: RunConfig, run_dir: Path) -> StageReport:
    if not config.test_sets:
        return StageReport("evaluate", "skipped", "no test_sets in the config")
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

    results = evaluate(config.evaluate, model, config.test_sets, run_dir)
    mark_finished(run_dir, "evaluate", key)
    return StageReport(
        "evaluate",
        "done",
        "; ".join(f"{r.name}: F1 {r.f1_strict:.4f}" for r in results),
        outputs={f"{r.name} report": str(r.report["markdown"]) for r in results},
    )


# --- finished stages ----------------------------------------------------------------------
# Generate and annotate resume shard by shard; train and evaluate have no shards, so a rerun
# skips them when their config section and the files they read are what they last ran on.


def fingerprint(section: Any, inputs: list[Path]) -> str:
    """Hash of a config section and the name, size and mtime of every file under `inputs`
    (URIs count by name only: their listing would cost a round trip per file)."""
    digest = hashlib.sha256(json.dumps(section.model_dump(mode="json"), sort_keys=True).encode())
    for root in inputs:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            stat = f.stat() if f.is_file() else None
            digest.update(f"{f}:{stat and stat.st_size}:{stat and stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _marker(run_dir: Path, stage: str) -> Path:
    return run_dir / "stages" / f"{stage}.done"


def finished(run_dir: Path, stage: str, key: str) -> bool:
    path = _marker(run_dir, stage)
    return path.is_file() and path.read_text(encoding="utf-8") == key


def mark_finished(run_dir: Path, stage: str, key: str) -> None:
    _marker(run_dir, stage).parent.mkdir(exist_ok=True)
    _marker(run_dir, stage).write_text(key, encoding="utf-8")
