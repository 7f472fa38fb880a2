"""`raysynth experiment GRID.yaml`: `register` adds the command to the `raysynth` parser
(cli.py's subparsers); the handler imports what it needs when it runs, so `--help` is fast."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `experiment` command to `commands`."""
    parser = commands.add_parser(
        "experiment",
        help="a grid of runs sharing their stages, with baselines, in one table",
        description="Run a grid of corpus sizes x recipes x annotators x backbones (x seeds): "
        "one corpus per recipe and seed, one annotation per corpus and annotator, a training "
        "and evaluation per cell, plus the dictionary, annotator-LLM and supervised "
        "baselines. Finished cells are skipped on a rerun. Writes results.md, results.json, "
        "learning_curve.png and per_type.png in <storage>/<name>/.",
    )
    parser.add_argument("grid", help="grid file (YAML), e.g. jobs/configs/experiments/tang.yaml")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these cells or baselines (names as --plan prints them)",
    )
    parser.add_argument(
        "--plan", action="store_true", help="print what would run, shared stages first, and stop"
    )
    parser.set_defaults(handler=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    from raysynth.experiment.config import load_grid
    from raysynth.experiment.plan import build_plan, describe_plan
    from raysynth.experiment.runner import run_plan

    plan = build_plan(load_grid(args.grid))
    if args.plan:
        print(describe_plan(plan.only(args.only)))
        return 0
    result = run_plan(plan, args.only)
    print(result.paths["markdown"].read_text(encoding="utf-8"), end="")
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    for outcome in result.failed:
        print(f"failed: {outcome.name}: {outcome.detail}")
    return 1 if result.failed else 0
