"""`raysynth experiment`: grid validation, the plan's sharing of stages, the per-paper configs,
and one tiny grid run end to end (a canned LLM on 127.0.0.1, the tiny BERT, real Ray)."""

from __future__ import annotations

import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from raysynth.cli import main
from raysynth.config import load_config
from raysynth.errors import ConfigError
from raysynth.experiment.config import load_grid
from raysynth.experiment.plan import build_plan, corpus_notes, describe_plan, notes_needed
from raysynth.experiment.runner import run_plan
from tests.helpers import DISEASES, OTHERS, TWO_WORD_DISEASES, write_easy_corpus

REPO = Path(__file__).resolve().parents[2]
TERMS = DISEASES + [" ".join(pair) for pair in TWO_WORD_DISEASES]


# --- a canned OpenAI-compatible LLM ------------------------------------------------------


class CannedLLM:
    """Answers a generation prompt with a sentence holding the seeded mentions, and an
    annotation prompt with a JSON list of the known disease terms in the note. Every call is
    counted, which is how the test sees that a rerun made none."""

    MENTIONS = re.compile(r"exactly as written: (.+?)\.\s+Write only")

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"llm": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def answer(self, messages: list[dict]) -> str:
        with self._lock:
            self.calls += 1
        if "single sentences" in messages[0]["content"]:
            return self.sentence(messages[-1]["content"])
        note = messages[-1]["content"]
        return json.dumps({"Disease": [t for t in TERMS if t in note]})

    def sentence(self, prompt: str) -> str:
        words = OTHERS[zlib.crc32(prompt.encode()) % len(OTHERS) :][:4]
        found = self.MENTIONS.search(prompt)
        if found is None:
            return f"In this {' '.join(words)} cohort nothing unusual was seen at follow-up."
        return f"The {' '.join(words)} patients had {found.group(1)} on admission."

    def __enter__(self) -> CannedLLM:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    llm: CannedLLM

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        content = self.llm.answer(body["messages"])
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": content}}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }  # fmt: skip
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# --- a tiny grid ---------------------------------------------------------------------------


def tiny_grid(folder: Path, backend: dict, backbone: str | None, **overrides) -> dict:
    """Sentences seeded from the easy corpus's diseases, scored on 40 easy sentences."""
    (folder / "diseases.txt").write_text("\n".join(TERMS) + "\n", encoding="utf-8")
    write_easy_corpus(folder / "test.tsv", 40, seed=11)
    write_easy_corpus(folder / "dev.tsv", 20, seed=12)
    write_easy_corpus(folder / "real_train.tsv", 60, seed=13)
    recipe = {
        "note_types": {"research abstract": 1},
        "entity_types": [
            {
                "label": "Disease",
                "definition": "a disease",
                "lexicons": [{"path": "diseases.txt"}],
                "per_note": [1, 2],
            }
        ],
        "filters": {"min_chars": 3},
        "no_seed_fraction": 0.2,
        "template": "sentence_v1",
        "num_notes": 4,
        "seed": 3,
    }
    kb = {"lexicons": {"Disease": [{"path": "diseases.txt"}]}, "filters": {"min_chars": 3}}
    grid = {
        "name": "tiny",
        "base": {
            "storage": str(folder / "runs"),
            "test_sets": [{"name": "easy-test", "path": "test.tsv"}],
            "generate": {"recipe": recipe, "shard_rows": 4, "backend": backend},
            "annotate": {"labels": {"Disease": "a disease"}, "backend": backend, "kb": kb},
            "train": {
                "labels": ["Disease"],
                "dev": {"path": "dev.tsv"},
                "epochs": 1,
                "batch_size": 8,
                "learning_rate": 5e-3,
                "num_workers": 1,
            },
            "evaluate": {"actors": 1, "bootstrap": 20},
        },
        "sizes": [4, 8],
        "annotators": {
            "plain": [{"format": "json", "max_tokens": 64}],
            "hints": [{"format": "json", "kb_in_prompt": True, "max_tokens": 64}],
        },
        "backbones": [backbone],
        "baselines": {
            "dictionary": True,
            "llm": {"annotators": ["plain"], "limit": 10},
            "supervised": {"data": "real_train.tsv", "epochs": 1},
        },
    }
    grid.update(overrides)
    return grid


def write_grid(folder: Path, grid: dict) -> Path:
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False), encoding="utf-8")
    return path


LOCAL = {"kind": "local"}


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sizes": ...}, r"sizes: Field required"),
        ({"sizes": [4, 6]}, r"sizes: 6 is not a multiple of recipes\.base shard_rows \(4\)"),
        ({"recipes": {"a": {"recipe_fil": "x.yaml"}}}, r"recipes\.a\.recipe_fil: Extra inputs"),
        ({"recipes": {"bad name": {}}}, r"recipes\.bad name\.\[key\]"),
        (
            {"recipes": {"a": {"patch": {"no_seed_fraction": 2}}}},
            r"recipes\.a\.patch\.no_seed_fraction: Input should be less than or equal to 1",
        ),
        (
            {"annotators": {"nokb": {"use_kb": False, "strategies": [{"kb_in_prompt": True}]}}},
            r"annotators\.nokb: strategies\.0\.kb_in_prompt: needs a `kb` section",
        ),
        ({"annotators": {"x": [{"format": "yaml"}]}}, r"annotators\.x\.strategies\.0\.format"),
        ({"backbones": {"gone": "no/such/model"}}, r"backbones\.gone: .* \(no config\.json\)"),
        (
            {"baselines": {"llm": {"annotators": ["nobody"]}}},
            r"grid\.yaml: baselines\.llm\.annotators: unknown name\(s\) nobody",
        ),
        ({"baselines": {"supervised": {"data": "missing.tsv"}}}, r"baselines\.supervised\.data"),
        (
            {"self_training": {"text": "missing.tsv", "teachers": ["base-n4-plain-minilm"]}},
            r"self_training\.text: .*missing\.tsv does not exist",
        ),
        (
            {
                "self_training": {
                    "text": "test.tsv",
                    "teachers": ["base-n4-plain-minilm"],
                    "negatives": [{"path": "genes.txt"}],
                }
            },
            r"self_training\.negatives\.0\.path: no such lexicon file .*genes\.txt",
        ),
        (
            {"self_training": {"text": "test.tsv", "teachers": ["base-n4-plain-minilm-self"]}},
            r"self_training\.teachers: no cell named base-n4-plain-minilm-self before it",
        ),
        (
            {
                "self_training": {
                    "text": "test.tsv",
                    "teachers": ["base-n4-plain-minilm"],
                    "consistency": {"drop_below": 0.9},
                }
            },
            r"self_training\.consistency: .*drop_below \(0\.9\) is above label_all \(0\.7\)",
        ),
    ],
)
def test_grid_errors_name_the_field(tmp_path, change, message):
    grid = tiny_grid(tmp_path, LOCAL, None, baselines={})
    grid.update(change)
    grid = {k: v for k, v in grid.items() if v is not ...}  # ...: the field left out
    with pytest.raises(ConfigError, match=message):
        build_plan(load_grid(write_grid(tmp_path, grid)))


def test_base_section_errors_name_the_field(tmp_path):
    grid = tiny_grid(tmp_path, LOCAL, None)
    grid["base"]["train"]["data"] = {"path": "real_train.tsv"}
    with pytest.raises(ConfigError, match=r"base: train\.data: cells train on their annotations"):
        load_grid(write_grid(tmp_path, grid))
    grid = tiny_grid(tmp_path, LOCAL, None)
    grid["base"]["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match=r"base\.train\.epochs: Input should be greater"):
        load_grid(write_grid(tmp_path, grid))


# --- the plan ------------------------------------------------------------------------------


def test_plan_shares_generation_and_annotation(tmp_path):
    """2 sizes x 2 annotators x 1 backbone: 1 corpus at the largest size, 2 annotations of it,
    4 trainings; a size is the first size/shard_rows shards of the shared corpus."""
    grid = tiny_grid(tmp_path, LOCAL, None, baselines={})
    plan = build_plan(load_grid(write_grid(tmp_path, grid)))

    assert len(plan.corpora) == 1 and plan.corpora[0].generate.recipe.num_notes == 8
    assert [a.annotator for a in plan.annotations] == ["plain", "hints"]
    assert {a.corpus.name for a in plan.annotations} == {"base"}
    assert sorted(c.name for c in plan.cells) == [
        "base-n4-hints-minilm", "base-n4-plain-minilm",
        "base-n8-hints-minilm", "base-n8-plain-minilm",
    ]  # fmt: skip
    by_name = {c.name: c for c in plan.cells}
    small, large = by_name["base-n4-plain-minilm"], by_name["base-n8-plain-minilm"]
    assert small.annotation is large.annotation  # one annotation serves both sizes
    assert [p.name for p in plan.corpora[0].note_shards(4)] == ["shard-00000.parquet"]
    assert len(plan.corpora[0].note_shards(8)) == 2
    assert small.train.data.path == small.annotation.subset(4)
    assert len({c.digest for c in plan.cells}) == 4
    assert plan.baselines == []
    # Every annotation runs in the experiment folder: one LLM response cache for all.
    assert all(a.folder.is_relative_to(plan.grid.exp_dir) for a in plan.annotations)


def test_a_run_generates_and_labels_only_as_far_as_its_cells_need(tmp_path):
    """--only a small cell does not pay for the grid's largest size, and the labels' digest
    leaves the size out, so a larger run later extends the same annotation."""
    grid = tiny_grid(tmp_path, LOCAL, None, baselines={})
    plan = build_plan(load_grid(write_grid(tmp_path, grid)))
    small = plan.only(["base-n4-plain-minilm"])
    needed = notes_needed(small.cells)
    assert needed == {small.annotations[0].folder: 4}
    assert corpus_notes(small.corpora[0], small.annotations, needed) == 4
    assert notes_needed(plan.cells) == {a.folder: 8 for a in plan.annotations}
    assert small.corpora[0].generate_at(4).recipe.num_notes == 4
    assert "  base: 4 notes" in describe_plan(small)

    grid["sizes"] = [4]
    fewer = build_plan(load_grid(write_grid(tmp_path, grid)))
    assert fewer.corpora[0].generate.recipe.num_notes == 4
    assert [a.digest for a in fewer.annotations] == [a.digest for a in plan.annotations]
    grid["annotators"]["plain"] = grid["annotators"]["hints"]
    other = build_plan(load_grid(write_grid(tmp_path, grid)))
    assert other.annotations[0].digest != plan.annotations[0].digest


def test_plan_axes_multiply_and_only_keeps_what_a_cell_needs(tmp_path, tiny_bert):
    grid = tiny_grid(
        tmp_path,
        LOCAL,
        None,
        recipes={"seeded": {}, "unseeded": {"patch": {"no_seed_fraction": 1.0}}},
        backbones={"minilm": None, "tiny": str(tiny_bert)},
        seeds=[1, 2],
    )
    plan = build_plan(load_grid(write_grid(tmp_path, grid)))
    assert len(plan.corpora) == 4  # 2 recipes x 2 seeds
    assert len(plan.annotations) == 8  # x 2 annotators
    synthetic = [c for c in plan.cells if c.kind == "synthetic"]
    assert len(synthetic) == 32  # x 2 sizes x 2 backbones
    assert [c.name for c in plan.cells if c.kind == "supervised"] == [
        "supervised-minilm", "supervised-tiny"
    ]  # fmt: skip
    assert {c.train.seed for c in synthetic} == {1, 2}
    unseeded = next(c for c in plan.corpora if c.recipe == "unseeded")
    assert unseeded.generate.recipe.no_seed_fraction == 1.0
    assert [b.name for b in plan.baselines] == ["dictionary", "llm-plain"]

    teacher = "seeded-n8-plain-tiny-s1"
    grid["self_training"] = {"text": "real_train.tsv", "teachers": [teacher, f"{teacher}-self"]}
    plan = build_plan(load_grid(write_grid(tmp_path, grid)))
    student, second = [c for c in plan.cells if c.kind == "self-trained"]
    assert (student.name, second.name) == (f"{teacher}-self", f"{teacher}-self-self")
    assert (student.teacher.name, second.teacher) == (teacher, student)
    assert (second.size, second.recipe, second.annotation) == (8, "seeded", student.annotation)
    assert second.train.data.path == second.run_dir / "train-data"
    # A student needs its teacher's model: --only a student runs its teachers too.
    assert [c.name for c in plan.only([second.name]).cells] == [teacher, student.name, second.name]

    one = plan.only(["unseeded-n4-hints-tiny-s2", "dictionary"])
    assert [c.name for c in one.cells] == ["unseeded-n4-hints-tiny-s2"]
    assert [a.annotator for a in one.annotations] == ["hints"]
    assert [c.name for c in one.corpora] == ["unseeded-s2"]
    assert [b.name for b in one.baselines] == ["dictionary"]
    with pytest.raises(ConfigError, match="--only: no cell or baseline named nope"):
        plan.only(["nope"])


@pytest.mark.parametrize("paper", ["tang", "suvalov", "monajatipoor", "lu"])
def test_paper_configs_load(paper):
    grid = load_grid(REPO / "jobs" / "configs" / "experiments" / f"{paper}.yaml")
    plan = build_plan(grid)
    assert plan.cells and plan.baselines
    assert len(plan.corpora) == len(grid.recipes) * len(grid.seeds)


def test_the_both_corpora_run_trains_and_scores_as_tang_does():
    """RESULTS.md compares tang-both-corpora.yaml's model with tang.yaml's cells."""
    folder = REPO / "jobs" / "configs" / "experiments"
    both, grid = load_config(folder / "tang-both-corpora.yaml"), load_grid(folder / "tang.yaml")
    assert both.train.model_copy(update={"data": None}) == grid.base.train
    assert (both.test_sets, both.evaluate) == (grid.base.test_sets, grid.base.evaluate)


def test_suvalov_scores_bc5cdr_with_the_type_map():
    grid = load_grid(REPO / "jobs" / "configs" / "experiments" / "suvalov.yaml")
    sentences, abstracts = grid.base.test_sets
    assert sentences.format == "conll" and abstracts.format == "jsonl"
    assert {t.label_map for t in grid.base.test_sets} == {"Chemical=DRUG,Disease=DISEASE"}
    assert grid.base.train.labels == ["DRUG", "PROCEDURE", "DISEASE"]
    assert {a.strategies[0].kb_in_prompt for a in grid.annotators.values()} == {True, False}


def test_cli_plan(tmp_path, capsys):
    grid = tiny_grid(tmp_path, LOCAL, None)
    assert main(["experiment", str(write_grid(tmp_path, grid)), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "1 generation(s):\n  base: 8 notes" in out
    assert "5 training(s) + evaluation(s)" in out  # 4 cells + the supervised baseline


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.timeout(1800)  # a few minutes alone; Ray start-ups stretch it on a busy machine
def test_tiny_grid_runs_resumes_and_reports(ray_session, tiny_bert, tmp_path):
    """1 size x 1 annotator (dictionary hints in the prompt) x the tiny BERT, with the
    dictionary and LLM baselines (more sizes and the supervised baseline train like this cell
    and the planner test covers their sharing: left out for CI time)."""
    with CannedLLM() as llm:
        backend = {"kind": "openai", "base_url": llm.base_url, "model": "canned",
                   "api_key_env": None, "concurrency": 1, "max_in_flight": 4}  # fmt: skip
        grid = tiny_grid(tmp_path, backend, str(tiny_bert))
        grid["annotators"] = {"hints": grid["annotators"]["hints"]}
        grid["sizes"] = [4]
        grid["baselines"]["llm"]["annotators"] = ["hints"]
        del grid["baselines"]["supervised"]
        teacher = "base-n4-hints-tiny_bert0"
        (tmp_path / "negatives.txt").write_text("gout\n", encoding="utf-8")
        grid["self_training"] = {"text": "real_train.tsv", "teachers": [teacher], "limit": 30,
                                 "negatives": [{"path": "negatives.txt"}],
                                 "consistency": {}}  # fmt: skip
        path = write_grid(tmp_path, grid)
        first = run_plan(build_plan(load_grid(path)))
        assert not first.failed, first.failed
        calls = llm.calls
        models = {p: p.stat().st_mtime_ns for p in first.exp_dir.glob("*/*/model/*.safetensors")}
        check_student(first.exp_dir / "cells", teacher)

        second = run_plan(build_plan(load_grid(path)))
        assert {o.status for o in second.outcomes} == {"skipped"}
        assert len(second.outcomes) == 2 + 2  # teacher and student, dictionary and LLM
        assert llm.calls == calls  # no LLM call: no generation, annotation or baseline ran
        assert models and models == {p: p.stat().st_mtime_ns for p in models}
        rows = json.loads((first.exp_dir / "results.json").read_text())
        assert rows == first.rows == second.rows
        markdown = (first.exp_dir / "results.md").read_text()

        # Only the evaluation changed: the cell is scored again, its model is kept.
        grid["base"]["evaluate"]["bootstrap"] = 10
        write_grid(tmp_path, grid)
        third = run_plan(build_plan(load_grid(path)), only=["base-n4-hints-tiny_bert0"])
        assert [(o.name, o.status) for o in third.outcomes] == [
            ("base-n4-hints-tiny_bert0", "done")
        ]  # fmt: skip
        assert llm.calls == calls
        assert models == {p: p.stat().st_mtime_ns for p in models}
        assert [r["name"] for r in third.rows] == ["base-n4-hints-tiny_bert0"]

        # The labels' settings changed: the stored annotation shards are stale, not resumed.
        assert "llm" in label_sources(first.exp_dir / "annotations/base/hints/annotations")
        hints = grid["annotators"]["hints"]
        grid["annotators"]["hints"] = {"strategies": hints, "merge": {"sources": ["seed", "kb"]}}
        write_grid(tmp_path, grid)
        fourth = run_plan(build_plan(load_grid(path)), only=["base-n4-hints-tiny_bert0"])
        assert not fourth.failed, fourth.failed
        sources = label_sources(first.exp_dir / "annotations/base/hints/annotations")
        assert sources and sources <= {"seed", "kb"}, sources
    check_rows(rows, path)
    assert markdown.count("\n| synthetic |") == markdown.count("\n| self-trained (round 1) |") == 1
    for plot in ("learning_curve.png", "per_type.png"):
        assert (first.exp_dir / plot).stat().st_size > 1000


def check_student(cells: Path, teacher: str) -> None:
    """The student trained on the teacher's 30 labelled real sentences and its synthetic
    notes; the labels carry no gold the real file holds, and no negative ('gout'); the
    consistency vote ran (labels of its own, a count)."""
    student = cells / f"{teacher}-self"
    marker = json.loads((student / "experiment.json").read_text())["result"]
    assert marker["labelled_documents"] == 30 and marker["labelled_mentions"] > 0
    sources = label_sources(student / "labels")
    assert "model" in sources and sources <= {"model", "vote"}
    assert "documents_with_voted_out" in marker
    rows = pq.read_table(student / "labels").to_pylist()
    texts = {r["text"][e["start"] : e["end"]] for r in rows for e in r["entities"]}
    assert "gout" not in texts and texts & set(TERMS)
    gout = sum("gout" in r["text"].split() for r in rows)
    assert 0 < marker["documents_with_negatives"] <= gout
    synthetic = sorted(p.name for p in (student / "train-data").glob("shard-*.parquet"))
    assert synthetic == ["shard-00000.parquet"]  # the teacher's 4 notes
    assert len(list((student / "train-data").glob("*.parquet"))) > 1


def label_sources(annotations: Path) -> set[str]:
    rows = pq.read_table(annotations).to_pylist()
    return {s for row in rows for entity in row["entities"] for s in entity["source"].split("+")}


def check_rows(rows: list[dict], grid_path: Path) -> None:
    """One row per cell and baseline, scored on the test set, each with its command."""
    kinds = [r["kind"] for r in rows]
    assert kinds.count("synthetic") == kinds.count("self-trained") == 1
    assert {r["kind"]: r["rounds"] for r in rows} == {
        "synthetic": 0, "self-trained": 1, "dictionary": 0, "llm": 0
    }  # fmt: skip
    assert kinds.count("dictionary") == kinds.count("llm") == 1
    for row in rows:
        assert row["test_set"] == "easy-test"
        assert 0.0 <= row["f1"] <= 1.0 and set(row["per_type_f1"]) <= {"Disease"}
        assert row["command"] == f"raysynth experiment {grid_path} --only {row['name']}"
    llm_row = next(r for r in rows if r["kind"] == "llm")
    assert (llm_row["documents"], llm_row["annotator"]) == (10, "hints/json-zero-kb")
    assert next(r for r in rows if r["kind"] == "dictionary")["f1"] > 0.9  # exact lexicon
    assert {r["size"] for r in rows if r["kind"] in ("synthetic", "self-trained")} == {4}


def test_a_type_without_gold_is_reported_as_such(tmp_path):
    """BC5CDR has no PROCEDURE gold: the table says so and counts its predictions, rather than
    printing an F1 of 0.0 that reads as a type the model cannot find."""
    from raysynth.experiment.report import markdown, plot_per_type, summarize_scores
    from raysynth.scoring import score

    gold = [["B-DRUG", "O", "O", "B-DISEASE"]]
    pred = [["B-DRUG", "O", "B-PROCEDURE", "O"]]
    row = summarize_scores(score(gold, pred).to_dict())
    assert row["per_type_f1"] == {"DISEASE": 0.0, "DRUG": 1.0}
    assert row["no_gold"] == {"PROCEDURE": 1}
    assert row["precision"] == 0.5  # the PROCEDURE prediction is still a false positive
    empty = ("recipe", "seed", "size", "annotator", "backbone", "train_documents", "f1_95ci")
    fields = {key: None for key in empty}
    fields |= {"kind": "dictionary", "rounds": 0, "test_set": "bc5cdr-dev", "command": "-"}
    fields |= {"name": "d"}
    table = markdown([{**fields, **row}], "x")
    assert "DISEASE 0.000, DRUG 1.000, PROCEDURE no gold (1 predicted)" in table
    plot_per_type([{**fields, **row}], tmp_path / "per_type.png")
    assert (tmp_path / "per_type.png").stat().st_size > 1000
