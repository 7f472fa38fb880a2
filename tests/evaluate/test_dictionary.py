"""The model's predictions combined with the dictionary's matches (evaluate.dictionary)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raysynth.annotate.config import KnowledgeBase
from raysynth.config import TestSet
from raysynth.corpus import write_documents
from raysynth.documents import Document, Entity
from raysynth.errors import ConfigError
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.dictionary import combine
from raysynth.evaluate.job import evaluate
from raysynth.generate.recipe import LexiconFile

TEXT = "He has male breast cancer , Wiskott-Aldrich syndrome and gout ."


def span(text: str, label: str = "Disease") -> Entity:
    start = TEXT.index(text)
    return Entity(start, start + len(text), label, text=text)


def spans(entities: list[Entity]) -> list[str]:
    return [TEXT[e.start : e.end] for e in entities]


MATCHES = [span("male breast cancer"), span("Wiskott-Aldrich syndrome"), span("gout")]


def test_repair_takes_the_longer_match_and_adds_nothing():
    predicted = [span("breast cancer"), span("Wiskott-"), span("syndrome")]
    assert spans(combine(predicted, MATCHES, "repair")) == [
        "male breast cancer",
        "Wiskott-Aldrich syndrome",  # two cut pieces of one mention become it, once
    ]


def test_repair_keeps_a_longer_prediction_and_other_labels():
    predicted = [span("He has male breast cancer"), span("gout", "Drug")]
    assert combine(predicted, MATCHES, "repair") == predicted


def test_union_adds_only_the_matches_no_prediction_overlaps():
    predicted = [span("breast cancer"), span("Aldrich")]
    assert spans(combine(predicted, MATCHES, "union")) == [
        "male breast cancer",
        "Wiskott-Aldrich syndrome",
        "gout",
    ]
    assert combine(predicted, MATCHES, "off") == predicted


# Words of the tiny model's corpus (tests.helpers), and lexicon terms it never saw.
DOC = "the nurse asthma today chronic heart failure clinic sarcoidosis ."


@pytest.fixture()
def one_document(tmp_path) -> TestSet:
    gold = [
        Entity(DOC.index(t), DOC.index(t) + len(t), "Disease")
        for t in ("asthma", "chronic heart failure", "sarcoidosis")
    ]
    path = tmp_path / "test.jsonl"
    write_documents([Document("d1", DOC, gold)], path)
    return TestSet(name="one", path=path)


def _predicted(cfg: EvaluateConfig, model: Path, test: TestSet, out: Path, kb) -> list[Entity]:
    [result] = evaluate(cfg, str(model), [test], out, kb=kb)
    [row] = pq.read_table(result.predictions).to_pylist()
    return [Entity(p["start"], p["end"], p["label"], row["text"][p["start"] : p["end"]])
            for p in row["pred"]]  # fmt: skip


def _texts(entities: list[Entity]) -> set[str]:
    return {e.text for e in entities}


def test_evaluate_combines_the_model_with_the_runs_lexicons(
    ray_session, trained_tiny_ner, one_document, tmp_path
):
    lexicon = tmp_path / "terms.txt"
    lexicon.write_text("chronic heart failure\nsarcoidosis\n", encoding="utf-8")
    kb = KnowledgeBase(lexicons={"Disease": [LexiconFile(path=lexicon, unfiltered=True)]})
    cfg = EvaluateConfig(bootstrap=0, actors=1)
    alone = _predicted(cfg, trained_tiny_ner, one_document, tmp_path / "off", kb)
    assert "asthma" in _texts(alone) and "chronic heart failure" not in _texts(alone)
    union = cfg.model_copy(update={"dictionary": "union"})
    combined = _predicted(union, trained_tiny_ner, one_document, tmp_path / "union", kb)
    # What the model alone found, combined with the matches as `combine` does (tested above):
    # the lexicons reach the actors and the mode is the config's, whatever the tiny model tags.
    terms = ("chronic heart failure", "sarcoidosis")
    matches = [Entity(DOC.index(t), DOC.index(t) + len(t), "Disease", t) for t in terms]
    assert _texts(combined) == _texts(combine(alone, matches, "union")) != _texts(alone)
    assert "chronic heart failure" in _texts(combined)
    with pytest.raises(ConfigError, match="evaluate.dictionary: 'union' needs lexicons"):
        evaluate(union, str(trained_tiny_ner), [one_document], tmp_path / "none")


def test_the_field_is_left_out_of_digests_while_off():
    assert "dictionary" not in EvaluateConfig().model_dump()
    assert EvaluateConfig(dictionary="repair").model_dump()["dictionary"] == "repair"
