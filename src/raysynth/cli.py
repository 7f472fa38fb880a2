"""The `raysynth` command. Heavy libraries are imported inside each command, so `--help`
answers at once."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from raysynth.errors import RaysynthError

FORMATS = ("conll", "pubtator", "brat", "jsonl", "parquet")
SCHEMES = ("IOB1", "IOB2", "BIOES")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raysynth",
        description="Synthetic clinical notes -> LLM annotation -> NER fine-tuning -> "
        "evaluation on real text, as Ray jobs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser(
        "convert",
        help="convert an annotated corpus between formats",
        description="Convert a corpus between CoNLL (IOB1/IOB2/BIOES), PubTator, BRAT, JSONL "
        "and Parquet. Formats are guessed from the names (.tsv/.conll/.iob: CoNLL; "
        ".pubtator or *_corpus.txt: PubTator; .jsonl; .parquet or a folder of shards; "
        "a folder or .ann: BRAT) unless given.",
    )
    convert.add_argument("input", help="corpus file or folder")
    convert.add_argument("output", help="file or folder to write")
    convert.add_argument("--from", dest="source_format", choices=FORMATS, help="input format")
    convert.add_argument("--to", dest="target_format", choices=FORMATS, help="output format")
    convert.add_argument("--scheme", choices=SCHEMES, default="IOB2", help="input CoNLL tags")
    convert.add_argument("--out-scheme", choices=SCHEMES, default="IOB2", help="output CoNLL tags")
    convert.add_argument(
        "--label-map", help="preset (ncbi-disease) or FROM=TO,FROM=TO applied to labels"
    )
    convert.set_defaults(handler=_convert)

    run = commands.add_parser(
        "run",
        help="run every stage from one config",
        description="Run the pipeline from a YAML config and print where the results are.",
    )
    run.add_argument("config", help="run config (YAML), e.g. jobs/configs/local.yaml")
    run.set_defaults(handler=_run)

    generate = commands.add_parser(
        "generate",
        help="generate synthetic notes (the config's generate section)",
        description="Expand the recipe into prompt shards, send them through the LLM backend, "
        "and write <run>/generate/notes/ (one shard per prompt shard; a rerun skips finished "
        "shards) and <run>/generate/stats.json.",
    )
    generate.add_argument("config", help="run config (YAML) with a generate section")
    generate.set_defaults(handler=_generate)

    annotate = commands.add_parser(
        "annotate",
        help="label notes with the LLM (the config's annotate section)",
        description="Prompt the LLM with each strategy, parse and align its answers, merge "
        "them with the seeds and the dictionary, and write <run>/annotations/ (one shard per "
        "note shard; a rerun skips finished shards and reuses cached answers). With --gold: "
        "annotate a human-labeled corpus instead, each strategy alone, and print P/R/F1 per "
        "strategy (written to <run>/annotator-eval/).",
    )
    annotate.add_argument("config", help="run config (YAML) with an annotate section")
    annotate.add_argument("--gold", metavar="PATH", help="human-labeled corpus to score on")
    annotate.add_argument("--format", choices=FORMATS, help="format of the --gold corpus")
    annotate.add_argument("--label-map", help="--gold label -> config label: FROM=TO,...")
    annotate.add_argument("--limit", type=int, help="--gold: score only the first N documents")
    annotate.set_defaults(handler=_annotate)

    train = commands.add_parser(
        "train",
        help="fine-tune the NER model (the config's train section)",
        description="Fine-tune a Hugging Face token-classification model with Ray Train on the "
        "run's annotations (or train.data), select it on dev F1, and write <run>/model and "
        "<run>/train_metrics.json.",
    )
    train.add_argument("config", help="run config (YAML) with a train section")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model on real test sets (Ray Data batch inference)",
        description="Run a token-classification model over real test sets with Ray Data, "
        "write the predictions table and a report (JSON, Markdown, PNG) per test set. With "
        "CONFIG: the run's model and test_sets; --model and --test override them.",
    )
    evaluate.add_argument(
        "config", nargs="?", help="run config, or experiment grid (its base; output: --out)"
    )
    evaluate.add_argument("--model", help="Hugging Face model folder")
    evaluate.add_argument("--test", nargs="+", metavar="PATH", help="test set file(s) or folders")
    evaluate.add_argument("--format", choices=FORMATS, help="format of the --test files")
    evaluate.add_argument("--label-map", help="test label -> model label: FROM=TO,FROM=TO")
    evaluate.add_argument(
        "--out", default="runs/evaluate", help="output folder without CONFIG or with a grid"
    )
    evaluate.add_argument(
        "--llm",
        action="store_true",
        help="score the annotate section's strategies on the test sets instead of a model "
        "(the LLM baseline; the privacy guard applies)",
    )
    evaluate.add_argument("--limit", type=int, help="--llm: only the first N documents")
    evaluate.add_argument(
        "--labels",
        metavar="DIR",
        help="score a table of labels instead of a model, matched to the test documents by "
        "id: what self-training labelled (<cell>/labels), on the gold of the same text",
    )
    evaluate.add_argument(
        "--no-abbreviations",
        action="store_true",
        help="score the predictions as they are, without the abbreviation step "
        "(evaluate.abbreviations)",
    )
    evaluate.add_argument(
        "--dictionary",
        choices=["off", "repair", "union"],
        help="combine the model with CONFIG's annotate.kb lexicons: repair its boundaries, "
        "or also add the matches it misses (evaluate.dictionary; default: the config's, off)",
    )
    evaluate.set_defaults(handler=_evaluate)

    compare = commands.add_parser(
        "compare",
        help="one table and a learning curve across runs",
        description="Compare the evaluation reports of several runs: a Markdown/JSON table and "
        "a plot of F1 against training corpus size.",
    )
    compare.add_argument("runs", nargs="+", help="run directories")
    compare.add_argument("--out", default="runs/compare", help="output folder")
    compare.set_defaults(handler=_compare)

    # Light: each registers its parsers and imports its handlers' libraries lazily.
    from raysynth.corpus.commands import register as register_data
    from raysynth.experiment.commands import register as register_experiment
    from raysynth.llm.commands import register as register_llm

    register_llm(commands)
    register_data(commands)
    register_experiment(commands)
    return parser


def _convert(args: argparse.Namespace) -> int:
    from raysynth.corpus import ReadReport, parse_label_map, read_documents, write_documents

    read_report = ReadReport()
    docs = read_documents(
        args.input,
        args.source_format,
        scheme=args.scheme,
        label_map=parse_label_map(args.label_map),
        report=read_report,
    )
    written = write_documents(docs, args.output, args.target_format, scheme=args.out_scheme)
    print(f"read {args.input}: {read_report.summary()}")
    print(f"wrote {args.output}: {written.summary()}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from raysynth.config import load_config
    from raysynth.pipeline import run

    result = run(load_config(args.config))
    if result.storage.remote:
        print(f"\nrun stored at: {result.storage.remote} (working copy below)")
    print(f"\nrun directory: {result.run_dir}")
    print(f"manifest:      {result.run_dir / 'manifest.json'}")
    for stage in result.stages:
        for name, path in stage.outputs.items():
            print(f"{stage.name} {name}: {path}")
    return 0


@contextmanager
def _stage_session(config: Any) -> Iterator[Any]:
    """Ray, and the run's storage fetched before a single-stage command and mirrored after
    it (even when it fails: the shards it wrote are kept)."""
    from raysynth.runtime import ray_session

    storage = config.run_storage()
    storage.pull()
    try:
        with ray_session():
            yield storage
    finally:
        storage.push()


def _config_with(path: str, section: str) -> Any:
    """The run config at `path`, which must have `section` (generate, train, ...)."""
    from raysynth.config import load_config
    from raysynth.errors import ConfigError

    config = load_config(path)
    if getattr(config, section) is None:
        raise ConfigError(f"{path}: no {section} section")
    return config


def _generate(args: argparse.Namespace) -> int:
    from raysynth.generate.stage import generate

    config = _config_with(args.config, "generate")
    with _stage_session(config) as storage:
        result = generate(config.generate, storage.local, storage=storage)
    c = result.counts
    print(
        f"notes: {c['rows']} ({c['ok']} ok, {c['failed']} failed, {c['removed']} removed); "
        f"shards written {len(result.shards_written)}, skipped {len(result.shards_skipped)}"
    )
    print(f"notes: {result.notes_dir}\nstats: {result.stats_path}")
    return 0


def _annotate(args: argparse.Namespace) -> int:

    config = _config_with(args.config, "annotate")
    if args.gold:
        from raysynth.annotate.job import evaluate_annotator, read_corpus, results_table
        from raysynth.config_base import CorpusRef

        gold = CorpusRef(path=args.gold, format=args.format, label_map=args.label_map)
        docs = read_corpus(gold, args.limit)
        with _stage_session(config) as storage:
            results = evaluate_annotator(config.annotate, docs, storage.local)
        print(results_table(results))
        print(f"results: {config.run_dir / 'annotator-eval' / 'results.json'}")
        return 0
    from raysynth.annotate.job import annotate_run

    with _stage_session(config) as storage:
        result = annotate_run(config.annotate, storage.local, storage=storage)
    c = result.counts
    print(
        f"annotations: {c['rows']} ({c['ok']} ok, {c['quarantined']} quarantined); "
        f"{c['hallucinated']} of {c['mentions']} mentions not in the text; "
        f"shards written {len(result.shards_written)}, skipped {len(result.shards_skipped)}"
    )
    print(f"annotations: {result.out_dir}\nsummary: {result.summary_path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from raysynth.train.fit import train

    config = _config_with(args.config, "train")
    with _stage_session(config) as storage:
        result = train(config.train, storage.local, storage=storage)
    best = result.metrics["best"]
    print(f"model:   {result.model_dir} (dev F1 {best['eval_f1']:.4f}, step {best['step']})")
    print(f"metrics: {result.metrics_path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raysynth.config import RunConfig, TestSet, load_config
    from raysynth.corpus import parse_label_map
    from raysynth.errors import ConfigError
    from raysynth.evaluate.job import evaluate

    if args.config and _is_grid(args.config):
        # An experiment grid: its base's test sets, evaluate and annotate.kb, written to --out.
        from raysynth.experiment.config import load_grid

        out = {"name": Path(args.out).name, "storage": Path(args.out).parent}
        config = load_grid(args.config).base.model_copy(update=out)
    elif args.config:
        config = load_config(args.config)
    elif (args.model or args.labels) and args.test:
        config = RunConfig(name=Path(args.out).name, storage=Path(args.out).parent)
    else:
        raise ConfigError("give a run CONFIG, or --test with --model or --labels")
    tests = config.test_sets
    if args.test:
        tests = [TestSet(name=Path(p).stem, path=Path(p), format=args.format) for p in args.test]
    cfg = config.evaluate
    if args.label_map:
        cfg = cfg.model_copy(update={"label_map": parse_label_map(args.label_map)})
    if args.no_abbreviations:
        cfg = cfg.model_copy(update={"abbreviations": False})
    if args.dictionary:
        cfg = cfg.model_copy(update={"dictionary": args.dictionary})
    if args.llm:
        return _evaluate_llm(config, cfg, tests, args.limit)
    if args.labels:
        return _evaluate_labels(config, cfg, tests, Path(args.labels))
    with _stage_session(config) as storage:
        model = args.model or cfg.model or str(storage.local / "model")
        kb = config.annotate.kb if config.annotate else None
        results = evaluate(cfg, model, tests, storage.local, storage=storage, kb=kb)
    return _printed(results)


def _is_grid(path: str) -> bool:
    """An experiment grid has `sizes`, which no run config has."""
    from pathlib import Path

    from raysynth.config_base import read_yaml_mapping

    return "sizes" in read_yaml_mapping(Path(path), "config")


def _evaluate_llm(config: Any, cfg: Any, tests: list, limit: int | None) -> int:
    from raysynth.errors import ConfigError
    from raysynth.evaluate.llm_baseline import evaluate_llm

    if config.annotate is None:
        raise ConfigError("--llm needs a CONFIG with an annotate section")
    with _stage_session(config) as storage:
        results = evaluate_llm(config.annotate, cfg, tests, storage.local, limit)
    return _printed(results)


def _evaluate_labels(config: Any, cfg: Any, tests: list, labels_dir: Any) -> int:
    from raysynth.evaluate.spans import evaluate_labels

    types = set(config.annotate.labels) if config.annotate else None
    with _stage_session(config) as storage:
        results = evaluate_labels(labels_dir, cfg, tests, storage.local, types)
    return _printed(results)


def _printed(results: list) -> int:
    for result in results:
        print(f"{result.name}: F1 {result.f1_strict:.4f}; report {result.report['markdown']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raysynth.evaluate.compare import collect, write_comparison

    paths = write_comparison(collect([Path(r) for r in args.runs]), Path(args.out))
    print(Path(paths["markdown"]).read_text(), end="")
    print(f"table: {paths['markdown']}\nplot:  {paths['learning_curve_png']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (`ray job stop`, a pod's eviction, `kill`) ends a command as Ctrl-C does:
        # `finally` blocks run, so a llama.cpp server it started (in a session of its own,
        # which no process-group signal reaches) is stopped and not left running.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return args.handler(args)
    except (RaysynthError, ValueError) as err:
        print(f"raysynth: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raysynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
