"""CLI commands for public corpora: `raysynth data fetch ncbi-disease|bc5cdr --out DIR`.

`register` adds them to the `raysynth` parser (cli.py's subparsers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raysynth.corpus.fetch import CORPORA, MIRROR_ENV, fetch, next_steps


def register(commands: argparse._SubParsersAction) -> None:
    """Add the `data` command group to `commands` (cli.py's subparsers)."""
    data = commands.add_parser("data", help="public corpora", description="Public corpora.")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    parser = data_commands.add_parser(
        "fetch",
        help="download NCBI-disease or BC5CDR from its official home",
        description="Download a public corpus from its official home, check each archive's "
        "SHA-256 (or record it in SOURCE.json where none is published), unpack it into "
        "--out and print the test_sets entry for a run config. A failed fetch leaves nothing "
        f"in --out. Set {MIRROR_ENV} (or --mirror) to a base URL serving the same file names "
        "to download from a mirror instead.",
    )
    parser.add_argument("corpus", choices=list(CORPORA), help="which corpus")
    parser.add_argument("--out", type=Path, required=True, help="folder to create")
    parser.add_argument(
        "--mirror",
        metavar="URL",
        help=f"base URL to download the archives from (default: ${MIRROR_ENV}, else the "
        "official locations)",
    )
    parser.set_defaults(handler=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    print(next_steps(fetch(args.corpus, args.out, mirror=args.mirror)))
    return 0
