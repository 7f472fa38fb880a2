"""The `raysynth` command as a user runs it: a real subprocess of the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def raysynth(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("raysynth", path=str(Path(sys.executable).parent)) or "raysynth"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_is_fast_and_lists_commands():
    started = time.monotonic()
    result = raysynth("--help")
    assert result.returncode == 0
    assert "convert" in result.stdout and "run" in result.stdout
    assert time.monotonic() - started < 10
    convert = raysynth("convert", "--help")
    assert convert.returncode == 0 and "--label-map" in convert.stdout


def test_convert_pubtator_to_conll(shared_data, tmp_path):
    source = shared_data / "ncbi_disease" / "original" / "NCBIdevelopset_corpus.txt"
    out = tmp_path / "dev.tsv"
    result = raysynth("convert", str(source), str(out), "--label-map", "ncbi-disease")
    assert result.returncode == 0, result.stderr
    assert "100 documents" in result.stdout and "Disease=787" in result.stdout
    tags = [line.split("\t")[1] for line in out.read_text().splitlines() if line]
    assert tags.count("B-Disease") == 787 and set(tags) == {"O", "B-Disease", "I-Disease"}


def test_convert_bad_input_exits_2_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("word\n")
    result = raysynth("convert", str(bad), str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert f"{bad}:1: missing tag" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_local_config_writes_manifest_and_names_missing_stages(shared_data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\nstorage: " + str(tmp_path / "runs") + "\ntest_sets:\n"
        f"  - name: dev\n    path: {shared_data / 'ncbi_disease/conll/devel.tsv'}\n"
    )
    result = raysynth("run", str(config))
    assert result.returncode == 0, result.stderr
    assert "stages not implemented yet: generate, annotate" in result.stdout
    manifest = json.loads((tmp_path / "runs" / "t" / "manifest.json").read_text())
    data = manifest["stages"][0]
    assert data["name"] == "data" and "923 documents" in data["detail"]
    assert {s["name"]: s["status"] for s in manifest["stages"]}["train"] == "skipped"


def test_run_config_error_names_the_field(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: t\ntest_sets:\n  - name: dev\n    pth: x.tsv\n")
    result = raysynth("run", str(config))
    assert result.returncode == 2
    assert "test_sets.0.path" in result.stderr and "test_sets.0.pth" in result.stderr
