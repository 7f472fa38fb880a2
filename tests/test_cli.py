"""The `raysynth` command as a user runs it: a real subprocess of the installed script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def raysynth(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("raysynth", path=str(Path(sys.executable).parent)) or "raysynth"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, cwd=cwd, timeout=600, env=env
    )


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


def test_run_without_stage_sections_reads_the_data_and_skips_the_rest(shared_data, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: t\nstorage: " + str(tmp_path / "runs") + "\ntest_sets:\n"
        f"  - name: dev\n    path: {shared_data / 'ncbi_disease/conll/devel.tsv'}\n"
    )
    result = raysynth("run", str(config))
    assert result.returncode == 0, result.stderr
    assert "[annotate] skipped" in result.stdout
    manifest = json.loads((tmp_path / "runs" / "t" / "manifest.json").read_text())
    data = manifest["stages"][0]
    assert data["name"] == "data" and "923 documents" in data["detail"]
    statuses = {s["name"]: s["status"] for s in manifest["stages"]}
    assert statuses == {
        "data": "done",
        "generate": "skipped",
        "annotate": "skipped",
        "train": "skipped",
        "evaluate": "skipped",
        "self-train": "skipped",
    }


def test_run_config_error_names_the_field(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: t\ntest_sets:\n  - name: dev\n    pth: x.tsv\n")
    result = raysynth("run", str(config))
    assert result.returncode == 2
    assert "test_sets.0.path" in result.stderr and "test_sets.0.pth" in result.stderr


def test_evaluate_and_compare_commands(shared_data, tiny_ner_random, tmp_path):
    blocks = (shared_data / "ncbi_disease/conll/devel.tsv").read_text().split("\n\n")[:40]
    sample = tmp_path / "dev.tsv"
    sample.write_text("\n\n".join(blocks) + "\n\n")
    out = tmp_path / "runs" / "ev"
    result = raysynth(
        "evaluate", "--model", str(tiny_ner_random), "--test", str(sample), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dev: F1" in result.stdout
    report = json.loads((out / "report" / "dev" / "report.json").read_text())
    assert report["documents"]["total"] == 40
    compared = raysynth("compare", str(out), "--out", str(tmp_path / "cmp"))
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "| ev | dev |" in compared.stdout
    assert (tmp_path / "cmp" / "learning_curve.png").stat().st_size > 0


def test_evaluate_scores_a_model_with_a_grids_lexicons(shared_data, tiny_ner_random, tmp_path):
    """A grid as CONFIG: its base's annotate.kb is combined with the model, output in --out."""
    blocks = (shared_data / "ncbi_disease/conll/devel.tsv").read_text().split("\n\n")[:20]
    sample = tmp_path / "dev.tsv"
    sample.write_text("\n\n".join(blocks) + "\n\n")
    out = tmp_path / "runs" / "hybrid"
    grid = REPO / "jobs/configs/experiments/tang.yaml"
    args = ["--model", str(tiny_ner_random), "--test", str(sample), "--out", str(out)]
    result = raysynth("evaluate", str(grid), *args, "--dictionary", "union")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report" / "dev" / "report.json").read_text())
    assert report["dictionary"] == "union"
    assert "(evaluate.dictionary): union" in (out / "report/dev/report.md").read_text()
    assert report["documents"]["total"] == 20


def test_evaluate_without_model_or_config_is_a_clear_error(tmp_path):
    result = raysynth("evaluate", "--test", str(tmp_path / "x.tsv"))
    assert result.returncode == 2
    assert "give a run CONFIG, or --test with --model or --labels" in result.stderr


def test_stage_commands_need_their_config_section(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n")
    for command in ("train", "generate", "annotate"):
        result = raysynth(command, str(config))
        assert result.returncode == 2
        assert f"no {command} section" in result.stderr


def test_sigterm_stops_the_llama_server_a_command_started(tmp_path):
    """`ray job stop` or a pod's eviction sends SIGTERM: the server, in a session of its own,
    must not outlive raysynth."""
    import signal

    import psutil

    exe = shutil.which("raysynth", path=str(Path(sys.executable).parent)) or "raysynth"
    command = [exe, "llm", "serve", "--run-dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert "serving" in proc.stdout.readline()
            [server] = psutil.Process(proc.pid).children()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
            assert "stopped" in proc.stdout.read()
            psutil.wait_procs([server], timeout=30)
            assert not server.is_running()
        finally:
            proc.kill()
