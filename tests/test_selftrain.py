"""Self-training: a trained model labels real text no one annotated (selftrain.py)."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from raysynth.annotate.config import KnowledgeBase
from raysynth.config import load_config
from raysynth.config_base import CorpusRef
from raysynth.corpus import read_documents, write_documents
from raysynth.documents import Document, Entity
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.generate.recipe import LexiconFile
from raysynth.pipeline import run
from raysynth.schema import ANNOTATIONS
from raysynth.selftrain import label_real_text, link_training_set
from tests.helpers import easy_sentences, write_easy_corpus

# The words of the tiny model's corpus (tests.helpers), and two lexicon terms it never saw.
TEXTS = [
    "the nurse asthma today chronic heart failure .",
    "a report gout clinic sarcoidosis .",
    "the scan today .",
]


@pytest.fixture()
def real_text(tmp_path) -> CorpusRef:
    """Three documents whose file carries gold, some of it nothing a model would find
    ('nurse' as a Disease): it must not reach the labels."""
    docs = []
    for i, text in enumerate(TEXTS):
        word = text.split()[1]
        start = text.index(word)
        docs.append(Document(f"d{i}", text, [Entity(start, start + len(word), "Disease")]))
    path = tmp_path / "real.jsonl"
    write_documents(docs, path)
    return CorpusRef(path=path, format="jsonl")


def labels(out_dir) -> dict[str, set[str]]:
    table = pq.read_table(out_dir)
    assert table.schema.equals(ANNOTATIONS, check_metadata=False)
    rows = table.to_pylist()
    assert {r["status"] for r in rows} == {"ok"}
    assert {e["source"] for r in rows for e in r["entities"]} <= {"model"}
    return {r["note_id"]: {r["text"][e["start"] : e["end"]] for e in r["entities"]} for r in rows}


def test_the_model_and_the_lexicons_label_the_text_and_the_files_gold_is_dropped(
    ray_session, trained_tiny_ner, real_text, tmp_path
):
    lexicon = tmp_path / "terms.txt"
    lexicon.write_text("chronic heart failure\nsarcoidosis\n", encoding="utf-8")
    kb = KnowledgeBase(lexicons={"Disease": [LexiconFile(path=lexicon, unfiltered=True)]})
    cfg = EvaluateConfig(actors=1, dictionary="union")

    done = label_real_text(cfg, str(trained_tiny_ner), real_text, tmp_path / "labels", kb)
    found = labels(done.out_dir)
    assert set(found) == {"d0", "d1", "d2"}  # a document with no mention is kept too
    assert {"asthma", "chronic heart failure"} <= found["d0"]
    assert {"gout", "sarcoidosis"} <= found["d1"]
    assert not any(text in {"nurse", "report", "scan"} for text in set().union(*found.values()))
    assert (done.documents, done.mentions) == (3, sum(len(v) for v in found.values()))

    alone = label_real_text(
        cfg.model_copy(update={"dictionary": "off"}),
        str(trained_tiny_ner),
        real_text,
        tmp_path / "labels",  # labelled again in place: the old shards go
        limit=2,
        negatives=frozenset({"asthma"}),
    )
    found = labels(alone.out_dir)
    assert set(found) == {"d0", "d1"}
    assert "asthma" not in found["d0"] and "gout" in found["d1"]
    reasons = {r["note_id"]: r["reason"] for r in pq.read_table(alone.out_dir).to_pylist()}
    assert reasons == {"d0": "not labelled, negatives: asthma", "d1": None}
    assert alone.with_negatives == 1
    with pytest.raises(ConfigError, match="'union' needs lexicons"):
        label_real_text(cfg, str(trained_tiny_ner), real_text, tmp_path / "x")


def test_the_training_set_links_every_shard_of_its_sources(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "shard-00000.parquet").write_bytes(b"a")
    (tmp_path / "b" / "x_0.parquet").write_bytes(b"b")
    (tmp_path / "b" / "notes.txt").write_text("not a shard")
    folder = link_training_set(tmp_path / "set", [tmp_path / "a", tmp_path / "b"])
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.parquet", "x_0.parquet"]
    assert (folder / "x_0.parquet").read_bytes() == b"b"
    assert all(p.is_symlink() and not p.readlink().is_absolute() for p in folder.iterdir())
    with pytest.raises(ConfigError, match="two training shards named shard-00000.parquet"):
        link_training_set(tmp_path / "set", [tmp_path / "a", tmp_path / "a"])


def _run_config(tmp_path, tiny_bert, real_text: CorpusRef, **self_training) -> dict:
    """A run that trains the tiny model on an easy real-style corpus (no synthetic notes, so
    `synthetic: false`) and self-trains on `real_text`."""
    return {
        "name": "st",
        "storage": str(tmp_path / "runs"),
        "test_sets": [{"name": "easy", "path": str(write_easy_corpus(tmp_path / "t.tsv", 20, 5))}],
        "train": {
            "data": {"path": str(write_easy_corpus(tmp_path / "train.tsv", 40, 4))},
            "labels": ["Disease"], "model": str(tiny_bert), "epochs": 1, "num_workers": 1,
            "batch_size": 8, "max_length": 32, "stride": 8, "dev_fraction": 0.3,
        },
        "evaluate": {"actors": 1, "bootstrap": 10},
        "self_training": {
            "text": str(real_text.path), "dictionary": "off", "synthetic": False,
            **self_training,
        },
    }  # fmt: skip


def test_run_self_trains_in_rounds_and_a_rerun_redoes_nothing(
    ray_session, tiny_bert, real_text, tmp_path
):
    # The three documents and 20 more: a student holds a tenth of its documents out.
    docs = list(read_documents(real_text.path, "jsonl"))
    for i, sentence in enumerate(easy_sentences(20, seed=6)):
        docs.append(Document(f"e{i}", " ".join(w for w, _ in sentence), []))
    write_documents(docs, real_text.path)
    path = tmp_path / "st.yaml"
    path.write_text(yaml.safe_dump(_run_config(tmp_path, tiny_bert, real_text, rounds=2)))
    result = run(load_config(path))

    stage = result.stages[-1]
    assert (stage.name, stage.status) == ("self-train", "done"), stage.detail
    assert "round 1: " in stage.detail and "round 2: " in stage.detail
    for k in (1, 2):
        out = result.run_dir / "self-training" / f"round-{k}"
        found = labels(out / "labels")
        assert len(found) == 23  # every document, labelled by the model (labels() checks)
        assert (out / "model" / "config.json").is_file()
        assert (out / "report" / "easy" / "report.json").is_file()
        assert stage.outputs[f"round {k} model"] == str(out / "model")
    # round 2's teacher is round 1's student, so its labels are that model's
    assert json.loads(
        pq.read_table(result.run_dir / "self-training" / "round-2" / "labels")
        .column("annotator")[0]
        .as_py()
    )["model"] == str(result.run_dir / "self-training" / "round-1" / "model")

    again = run(load_config(path)).stages[-1]
    assert (again.status, again.detail) == (
        "skipped",
        "round 1: already done with these settings; round 2: already done with these settings",
    )
    # one more round keeps the first two
    path.write_text(yaml.safe_dump(_run_config(tmp_path, tiny_bert, real_text, rounds=3)))
    longer = run(load_config(path)).stages[-1]
    assert longer.detail.startswith(
        "round 1: already done with these settings; round 2: already done with these settings; "
        "round 3: "
    )
    assert (result.run_dir / "self-training" / "round-3" / "model" / "config.json").is_file()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.pop("train"), "self_training: needs a train section"),
        (
            lambda c: c["self_training"].update(dictionary="union"),
            "self_training.dictionary: 'union' needs lexicons (annotate.kb)",
        ),
        (lambda c: c["self_training"].update(text="nowhere.jsonl"), "self_training.text: "),
        (
            lambda c: c["self_training"].update(negatives=[{"path": "none.txt"}]),
            "self_training.negatives.0.path: no such lexicon file",
        ),
        (
            lambda c: c["self_training"].update(synthetic=True),
            "self_training.synthetic: students train on the synthetic notes, and train.data",
        ),
        (lambda c: c.update(storage="s3://bucket/runs"), "self_training: runs on local storage"),
    ],
)
def test_run_self_training_config_errors(tmp_path, tiny_bert, real_text, change, expected):
    config = _run_config(tmp_path, tiny_bert, real_text)
    change(config)
    path = tmp_path / "st.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(path)
