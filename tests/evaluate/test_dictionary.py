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


@pytest.fixture()
def one_document(tmp_path) -> TestSet:
    text = "the nurse noted asthma and chronic heart failure and sarcoidosis today ."
    gold = [
        Entity(text.index(t), text.index(t) + len(t), "Disease")
        for t in ("asthma", "chronic heart failure", "sarcoidosis")
    ]
    path = tmp_path / "test.jsonl"
    write_documents([Document("d1", text, gold)], path)
    return TestSet(name="one", path=path)


def _predicted(cfg: EvaluateConfig, model: Path, test: TestSet, out: Path, kb) -> set[str]:
    [result] = evaluate(cfg, str(model), [test], out, kb=kb)
    [row] = pq.read_table(result.predictions).to_pylist()
    return {row["text"][p["start"] : p["end"]] for p in row["pred"]}


def test_evaluate_combines_the_model_with_the_runs_lexicons(
    ray_session, trained_tiny_ner, one_document, tmp_path
):
    lexicon = tmp_path / "terms.txt"
    lexicon.write_text("chronic heart failure\nsarcoidosis\n", encoding="utf-8")
    kb = KnowledgeBase(lexicons={"Disease": [LexiconFile(path=lexicon, unfiltered=True)]})
    cfg = EvaluateConfig(bootstrap=0, actors=1)
    alone = _predicted(cfg, trained_tiny_ner, one_document, tmp_path / "off", kb)
    # The tiny model cuts the lexicon's mention short and never saw the other one.
    assert {"asthma", "heart failure"} <= alone and "sarcoidosis" not in alone
    union = cfg.model_copy(update={"dictionary": "union"})
    combined = _predicted(union, trained_tiny_ner, one_document, tmp_path / "union", kb)
    repaired = alone - {"heart failure"} | {"chronic heart failure"}
    assert combined == repaired | {"sarcoidosis"}
    with pytest.raises(ConfigError, match="evaluate.dictionary: 'union' needs lexicons"):
        evaluate(union, str(trained_tiny_ner), [one_document], tmp_path / "none")


def test_the_field_is_left_out_of_digests_while_off():
    assert "dictionary" not in EvaluateConfig().model_dump()
    assert EvaluateConfig(dictionary="repair").model_dump()["dictionary"] == "repair"
