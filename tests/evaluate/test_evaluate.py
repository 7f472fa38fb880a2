"""`raysynth evaluate` on a real local Ray, against direct single-process computations."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raysynth.alignment import tokenize_windows
from raysynth.config import TestSet
from raysynth.corpus import read_documents, write_documents
from raysynth.documents import Document, Entity
from raysynth.evaluate.config import EvaluateConfig
from raysynth.evaluate.job import evaluate
from raysynth.evaluate.predict import length_sorted_chunks
from raysynth.scoring import score_tags


def first_sentences(source: Path, n: int, out: Path) -> Path:
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:n]
    out.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return out


def direct_tags(model_dir: Path, sentences: list[list[str]]) -> list[list[str]]:
    """Word tags computed the textbook way, without raysynth: pre-split words, word_ids(),
    first subword of each word, one sentence at a time."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    tags = []
    for words in sentences:
        enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.inference_mode():
            best = model(**enc).logits.argmax(-1)[0].tolist()
        first: dict[int, str] = {}
        for position, word in enumerate(enc.word_ids()):
            if word is not None and word not in first:
                first[word] = model.config.id2label[best[position]]
        tags.append([first[i] for i in range(len(words))])
    return tags


def test_forward_chunks_are_length_sorted_within_budget_and_cover_every_window():
    lengths = [30, 5, 128, 7, 30, 300, 12, 5]
    chunks = length_sorted_chunks(lengths, budget=64)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    flat = [lengths[i] for chunk in chunks for i in chunk]
    assert flat == sorted(lengths)
    for chunk in chunks:
        padded = len(chunk) * max(lengths[i] for i in chunk)
        assert padded <= 64 or len(chunk) == 1  # a window over the budget goes alone
    assert [lengths[i] for i in chunks[0]] == [5, 5, 7, 12]  # 4 x 12 = 48; 5 x 30 > 64
    assert length_sorted_chunks([], 64) == []


def test_scores_equal_a_direct_single_process_computation(
    ray_session, tiny_ner_random, shared_data, tmp_path
):
    sample = first_sentences(
        shared_data / "ncbi_disease/conll/devel.tsv", 120, tmp_path / "dev.tsv"
    )
    # the model's own tags: no abbreviation step (tests/evaluate/test_abbreviations.py)
    cfg = EvaluateConfig(
        max_length=512, bootstrap=200, actors=2, batch_size=16, abbreviations=False
    )
    [result] = evaluate(cfg, str(tiny_ner_random), [TestSet(name="dev", path=sample)], tmp_path)
    report = json.loads(result.report["json"].read_text())

    docs = list(read_documents(sample))
    gold = [d.tags for d in docs]
    pred = direct_tags(tiny_ner_random, [d.tokens for d in docs])
    for mode, key in (("strict", "seqeval_strict"), ("default", "seqeval_default")):
        expected = score_tags(gold, pred, mode).overall
        got = report["scores"][key]["overall"]
        assert (got["tp"], got["n_pred"], got["n_gold"]) == (
            expected.tp,
            expected.n_pred,
            expected.n_gold,
        )
        assert got["f1"] == pytest.approx(expected.f1)
    assert report["documents"]["total"] == 120
    assert expected.n_pred > 0  # the random model does predict entities
    low, high = report["f1_strict_95ci"]
    assert low <= report["scores"]["seqeval_strict"]["overall"]["f1"] <= high
    table = pq.read_table(result.predictions)
    assert table.num_rows == 120
    by_id = {r["doc_id"]: r for r in table.to_pylist()}
    assert [by_id[d.doc_id]["pred_tags"] for d in docs] == pred
    for name in ("report.md", "per_type.png", "errors.png"):
        assert (result.report["json"].parent / name).stat().st_size > 0


def test_long_document_is_predicted_whole_across_windows(ray_session, trained_tiny_ner, tmp_path):
    """A document many windows long: every word is predicted, and `heart failure`, placed
    where a window ends, comes back as one entity."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained_tiny_ner)
    filler = "the nurse noted asthma today . "
    text, start = _text_with_entity_on_window_edge(tokenizer, filler, max_length=32, stride=8)
    entity = Entity(start, start + len("heart failure"), "Disease")
    doc = Document("long", text, [entity])
    path = tmp_path / "long.jsonl"
    write_documents([doc], path)
    cfg = EvaluateConfig(max_length=32, stride=8, bootstrap=0, actors=1)
    [result] = evaluate(cfg, str(trained_tiny_ner), [TestSet(name="long", path=path)], tmp_path)
    [row] = pq.read_table(result.predictions).to_pylist()
    assert row["unseen_words"] == 0
    assert len(row["pred_tags"]) == len(row["tokens"]) > 100
    predicted = {(p["start"], p["end"]) for p in row["pred"]}
    assert (entity.start, entity.end) in predicted


def _text_with_entity_on_window_edge(tokenizer, filler: str, max_length: int, stride: int):
    """Filler sentences, then `heart failure`, shifted one filler word at a time until the
    first window that holds `heart` ends before `failure`."""
    for extra in range(40):
        prefix = filler * 12 + "scan " * extra
        text = prefix + "heart failure today . " + filler * 12
        enc = tokenize_windows(tokenizer, text, max_length, stride)
        start = len(prefix)
        for offsets in enc["offset_mapping"]:
            ends = [e for s, e in offsets if e > s]
            if ends and start < ends[-1] <= start + len("heart"):
                return text, start
    raise AssertionError("no filler length puts the entity on a window edge")


def test_bad_input_is_counted_and_nothing_dropped(ray_session, trained_tiny_ner, tmp_path):
    long_text = "the nurse noted asthma today . " * 6500  # about 200k characters
    docs = [
        Document("empty", ""),
        Document("no-entities", "the nurse wrote a report ."),
        Document(
            "chemical",
            "aspirin helps gout .",
            [Entity(0, 7, "Chemical"), Entity(14, 18, "Disease")],
        ),
        Document("huge", long_text, [Entity(16, 22, "Disease")]),
    ]
    path = tmp_path / "bad.jsonl"
    write_documents(docs, path)
    cfg = EvaluateConfig(bootstrap=50, actors=1, batch_size=2)
    [result] = evaluate(cfg, str(trained_tiny_ner), [TestSet(name="bad", path=path)], tmp_path)
    report = json.loads(result.report["json"].read_text())
    assert report["documents"] == {"total": 4, "empty": 1, "without_gold_entities": 2}
    assert report["not_scored"]["gold_of_types_the_model_lacks"] == 1
    rows = {r["doc_id"]: r for r in pq.read_table(result.predictions).to_pylist()}
    assert sorted(rows) == ["chemical", "empty", "huge", "no-entities"]
    assert len(rows["huge"]["text"]) == len(long_text) > 200_000
    assert rows["huge"]["unseen_words"] == 0
    assert [g["label"] for g in rows["chemical"]["gold"]] == ["Chemical", "Disease"]
    assert rows["chemical"]["unscored_gold"] == 1
