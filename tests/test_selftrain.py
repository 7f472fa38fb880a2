"""Self-training: a trained model labels real text no one annotated (selftrain.py)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from raysynth.annotate.config import KnowledgeBase
from raysynth.config_base import CorpusRef
from raysynth.corpus import write_documents
from raysynth.documents import Document, Entity
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.generate.recipe import LexiconFile
from raysynth.schema import ANNOTATIONS
from raysynth.selftrain import label_real_text, link_training_set

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
