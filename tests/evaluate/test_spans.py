"""`raysynth evaluate --labels`: a table of labels (what self-training wrote) scored on the
gold of the text it labelled, like a model's predictions."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysynth.cli import main
from raysynth.corpus import write_documents
from raysynth.documents import Document, Entity
from raysynth.schema import ANNOTATIONS

TEXTS = {"a": "Gout and asthma today .", "b": "No sarcoidosis in the scan ."}


def span(text: str, words: str) -> Entity:
    start = text.index(words)
    return Entity(start, start + len(words), "Disease")


@pytest.fixture()
def gold(tmp_path):
    docs = [
        Document("a", TEXTS["a"], [span(TEXTS["a"], "Gout"), span(TEXTS["a"], "asthma")]),
        Document("b", TEXTS["b"], [span(TEXTS["b"], "sarcoidosis")]),
    ]
    path = tmp_path / "gold.jsonl"
    write_documents(docs, path)
    return path


def write_labels(folder, labelled: dict[str, tuple[str, list[Entity]]]):
    folder.mkdir()
    rows = [
        {
            "note_id": doc_id,
            "text": text,
            "entities": [e.to_row() for e in entities],
            "status": "ok",
            "reason": None,
            "annotator": "{}",
            "usage": None,
        }
        for doc_id, (text, entities) in labelled.items()
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=ANNOTATIONS), folder / "part-0.parquet")
    return folder


def test_labels_are_scored_on_the_gold_of_their_documents(ray_session, gold, tmp_path):
    labels = write_labels(
        tmp_path / "labels",
        {  # 'Gout' right, 'asthma' missed, 'scan' spurious, 'sarcoidosis' cut short
            "a": (TEXTS["a"], [span(TEXTS["a"], "Gout")]),
            "b": (TEXTS["b"], [span(TEXTS["b"], "scan"), span(TEXTS["b"], "No sarcoidosis")]),
        },
    )
    out = tmp_path / "scored"
    args = ["evaluate", "--labels", str(labels), "--test", str(gold), "--out", str(out)]
    assert main(args) == 0

    report = json.loads((out / "report/gold-labels/report.json").read_text())
    assert report["documents"]["total"] == 2
    assert report["labels"] == str(labels)
    strict = report["scores"]["seqeval_strict"]["overall"]
    assert strict["precision"] == pytest.approx(1 / 3)
    assert strict["recall"] == pytest.approx(1 / 3)


def test_labels_that_found_nothing_miss_every_gold_mention(ray_session, gold, tmp_path):
    nothing = write_labels(tmp_path / "labels", {i: (text, []) for i, text in TEXTS.items()})
    out = tmp_path / "scored"
    assert main(["evaluate", "--labels", str(nothing), "--test", str(gold), "--out", str(out)]) == 0

    report = json.loads((out / "report/gold-labels/report.json").read_text())
    strict = report["scores"]["seqeval_strict"]["overall"]
    assert (strict["n_gold"], strict["n_pred"], strict["tp"]) == (3, 0, 0)


def test_labels_of_another_text_are_a_clear_error(ray_session, gold, tmp_path, capsys):
    only_a = write_labels(tmp_path / "a", {"a": (TEXTS["a"], [])})
    edited = write_labels(tmp_path / "e", {"a": ("Gout .", []), "b": (TEXTS["b"], [])})
    for labels, error in [
        (only_a, "has no row for test document 'b'"),
        (edited, "document 'a' of .*/e has another text"),
    ]:
        args = ["evaluate", "--labels", str(labels), "--test", str(gold), "--out", str(tmp_path)]
        assert main(args) == 2
        assert re.search(error, capsys.readouterr().err)
