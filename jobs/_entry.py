"""The shared body of the jobs/ entrypoints.

`python jobs/<stage>.py --config FILE [options]` runs `raysynth <command> FILE [options]` in
this process, so a Ray job and the CLI share one code path: config loading and validation,
the Ray session (under `ray job submit`, RAY_ADDRESS points at the cluster the job was
submitted to, and raysynth.runtime connects to it instead of starting a Ray of its own),
the printed summary and the exit code that decides whether the job SUCCEEDED.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(command: str, argv: Sequence[str] | None = None) -> int:
    """Parse `--config`, pass it and any other option on to `raysynth <command>`."""
    parser = argparse.ArgumentParser(
        description=f"Ray job entrypoint for `raysynth {command}`; options other than "
        f"--config are passed on to it (see `raysynth {command} --help`).",
    )
    parser.add_argument("--config", required=True, help="run config (YAML)")
    args, rest = parser.parse_known_args(argv)
    from raysynth.cli import main as raysynth

    return raysynth([command, args.config, *rest])
