"""The jobs/ entrypoints are thin: each hands its --config and any other option to its own
`raysynth` command, so errors and exit codes are the CLI's (a Ray job FAILS with them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def entrypoint(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "jobs" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("stage", ["generate", "annotate", "train"])
def test_stage_entrypoint_runs_its_command(stage, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n")
    result = entrypoint(f"{stage}.py", "--config", str(config))
    assert result.returncode == 2
    assert f"raysynth: error: {config}: no {stage} section" in result.stderr


def test_run_pipeline_passes_the_config_to_raysynth_run(tmp_path):
    result = entrypoint("run_pipeline.py", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert f"{tmp_path / 'missing.yaml'}: no such config file" in result.stderr


def test_evaluate_entrypoint_passes_other_options_through(tmp_path):
    result = entrypoint("evaluate.py", "--config", "c.yaml", "--format", "nope")
    assert result.returncode == 2
    assert "raysynth evaluate: error: argument --format: invalid choice: 'nope'" in result.stderr


def test_config_is_required():
    result = entrypoint("run_pipeline.py")
    assert result.returncode == 2 and "--config" in result.stderr
