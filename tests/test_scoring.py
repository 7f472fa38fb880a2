"""Tests for raysynth.scoring: hand-computed cases, real NCBI-disease tags, and seqeval itself as
the reference for the tag-level counts."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from raysynth.documents import Entity
from raysynth.scoring import PRF, Scores, ScoreSet, score, score_spans, score_tags

DATA = Path(
    os.environ.get("RAYSYNTH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
NCBI_CONLL = DATA / "ncbi_disease" / "conll" / "devel.tsv"
NCBI_SENTENCES = DATA / "ncbi_disease" / "jsonl" / "dev.sentences.jsonl"


def approx_prf(p: float, r: float, f1: float, tp: int, n_pred: int, n_gold: int) -> PRF:
    """A PRF whose float fields compare with pytest.approx (counts exactly)."""
    return PRF(pytest.approx(p), pytest.approx(r), pytest.approx(f1), tp, n_pred, n_gold)


def assert_perfect(scores: ScoreSet, support: dict[str, int]) -> None:
    assert {label: prf.n_gold for label, prf in scores.per_type.items()} == support
    for prf in [scores.overall, *scores.per_type.values()]:
        assert (prf.precision, prf.recall, prf.f1) == (1.0, 1.0, 1.0)
        assert prf.tp == prf.n_pred == prf.n_gold


def all_sets(s: Scores) -> list[ScoreSet]:
    return [s.seqeval_strict, s.seqeval_default, s.span_exact, s.span_partial]


# ---------------------------------------------------------------------------------------------
# A realistic multi-type example with every kind of error, in four documents.
#
# doc 0 "Aspirin relieved chest pain in the patient"   boundary error: gold "chest pain",
#        Aspirin 0-7, chest 17-22, pain 23-27           pred "pain"
# doc 1 "Metformin was stopped because of lactic acidosis ."   type error: Metformin
#        Metformin 0-9, lactic 33-39, acidosis 40-48           predicted as Disease
# doc 2 "No fever ; ibuprofen given ."                  missed: fever
#        fever 3-8, ibuprofen 11-20
# doc 3 "Patient stable on warfarin ."                  spurious: "stable" as Disease
#        stable 8-14, warfarin 18-26

TEXTS = [
    "Aspirin relieved chest pain in the patient",
    "Metformin was stopped because of lactic acidosis .",
    "No fever ; ibuprofen given .",
    "Patient stable on warfarin .",
]
GOLD_TAGS = [
    ["B-Drug", "O", "B-Disease", "I-Disease", "O", "O", "O"],
    ["B-Drug", "O", "O", "O", "O", "B-Disease", "I-Disease", "O"],
    ["O", "B-Disease", "O", "B-Drug", "O", "O"],
    ["O", "O", "O", "B-Drug", "O"],
]
PRED_TAGS = [
    ["B-Drug", "O", "O", "B-Disease", "O", "O", "O"],
    ["B-Disease", "O", "O", "O", "O", "B-Disease", "I-Disease", "O"],
    ["O", "O", "O", "B-Drug", "O", "O"],
    ["O", "B-Disease", "O", "B-Drug", "O"],
]
GOLD_ENTITIES = [
    [Entity(0, 7, "Drug", "Aspirin"), Entity(17, 27, "Disease", "chest pain")],
    [Entity(0, 9, "Drug", "Metformin"), Entity(33, 48, "Disease", "lactic acidosis")],
    [Entity(3, 8, "Disease", "fever"), Entity(11, 20, "Drug", "ibuprofen")],
    [Entity(18, 26, "Drug", "warfarin")],
]
PRED_ENTITIES = [
    [Entity(0, 7, "Drug", "Aspirin"), Entity(23, 27, "Disease", "pain")],
    [Entity(0, 9, "Disease", "Metformin"), Entity(33, 48, "Disease", "lactic acidosis")],
    [Entity(11, 20, "Drug", "ibuprofen")],
    [Entity(8, 14, "Disease", "stable"), Entity(18, 26, "Drug", "warfarin")],
]

# Tag level and span exact (all tags are valid IOB2, so strict == default here):
#   gold  Drug: Aspirin, Metformin, ibuprofen, warfarin = 4; Disease: chest pain,
#         lactic acidosis, fever = 3; total 7
#   pred  Drug: Aspirin, ibuprofen, warfarin = 3; Disease: pain, Metformin, lactic acidosis,
#         stable = 4; total 7
#   tp    Drug 3 (Aspirin, ibuprofen, warfarin); Disease 1 (lactic acidosis); total 4
#   Drug     P 3/3 = 1.0   R 3/4 = 0.75  F1 2*3/(3+4) = 6/7
#   Disease  P 1/4 = 0.25  R 1/3         F1 2*1/(4+3) = 2/7
#   overall  P 4/7         R 4/7         F1 2*4/(7+7) = 4/7
EXACT = ScoreSet(
    overall=approx_prf(4 / 7, 4 / 7, 4 / 7, 4, 7, 7),
    per_type={
        "Disease": approx_prf(1 / 4, 1 / 3, 2 / 7, 1, 4, 3),
        "Drug": approx_prf(1.0, 3 / 4, 6 / 7, 3, 3, 4),
    },
)
# Span partial:
#   correct preds  Drug 3/3 (all exact); Disease: pain overlaps chest pain (yes), Metformin
#                  overlaps only a Drug gold (no), lactic acidosis (yes), stable (no) -> 2/4
#   golds hit      Drug: Aspirin, ibuprofen, warfarin yes, Metformin no (no Drug pred) -> 3/4;
#                  Disease: chest pain yes, lactic acidosis yes, fever no -> 2/3
#   Drug     P 3/3 = 1.0  R 3/4  F1 6/7
#   Disease  P 2/4 = 0.5  R 2/3  F1 2*(1/2)*(2/3)/(1/2+2/3) = (2/3)/(7/6) = 4/7   tp 2
#   overall  P 5/7        R 5/7  F1 5/7                                          tp 5
PARTIAL = ScoreSet(
    overall=approx_prf(5 / 7, 5 / 7, 5 / 7, 5, 7, 7),
    per_type={
        "Disease": approx_prf(1 / 2, 2 / 3, 4 / 7, 2, 4, 3),
        "Drug": approx_prf(1.0, 3 / 4, 6 / 7, 3, 3, 4),
    },
)


def test_example_entities_match_their_texts() -> None:
    for text, gold, pred in zip(TEXTS, GOLD_ENTITIES, PRED_ENTITIES, strict=True):
        for e in gold + pred:
            assert text[e.start : e.end] == e.text


def test_gold_against_itself_is_perfect_in_every_mode() -> None:
    s = score(GOLD_TAGS, GOLD_TAGS, GOLD_ENTITIES, GOLD_ENTITIES)
    assert s.n_docs == 4
    for scores in all_sets(s):
        assert_perfect(scores, {"Disease": 3, "Drug": 4})


def test_hand_computed_errors_all_modes() -> None:
    s = score(GOLD_TAGS, PRED_TAGS, GOLD_ENTITIES, PRED_ENTITIES)
    assert s.seqeval_strict == EXACT
    assert s.seqeval_default == EXACT
    assert s.span_exact == EXACT
    assert s.span_partial == PARTIAL
    assert list(s.seqeval_strict.per_type) == ["Disease", "Drug"]
    assert score_tags(GOLD_TAGS, PRED_TAGS, "strict") == EXACT
    assert score_spans(GOLD_ENTITIES, PRED_ENTITIES) == EXACT
    assert score_spans(GOLD_ENTITIES, PRED_ENTITIES, partial=True) == PARTIAL


def test_strict_and_default_modes_differ() -> None:
    gold = [["B-Disease", "I-Disease", "O", "B-Drug"], ["B-Drug", "I-Drug"]]
    pred = [["I-Disease", "I-Disease", "O", "B-Drug"], ["B-Drug", "I-Disease"]]
    # gold entities (both modes): Disease d0 0-2, Drug d0 3-4, Drug d1 0-2 -> 3
    #
    # default: an I- after O (or after another type) starts an entity
    #   pred: Disease d0 0-2, Drug d0 3-4, Drug d1 0-1, Disease d1 1-2 -> 4
    #   tp:   Disease d0 0-2, Drug d0 3-4 -> 2
    #   Disease  tp 1 pred 2 gold 1: P 1/2  R 1    F1 2*1/(2+1) = 2/3
    #   Drug     tp 1 pred 2 gold 2: P 1/2  R 1/2  F1 2*1/(2+2) = 1/2
    #   overall  tp 2 pred 4 gold 3: P 2/4  R 2/3  F1 2*2/(4+3) = 4/7
    assert score_tags(gold, pred, "default") == ScoreSet(
        overall=approx_prf(1 / 2, 2 / 3, 4 / 7, 2, 4, 3),
        per_type={
            "Disease": approx_prf(1 / 2, 1.0, 2 / 3, 1, 2, 1),
            "Drug": approx_prf(1 / 2, 1 / 2, 1 / 2, 1, 2, 2),
        },
    )
    # strict: an entity starts only at B-, so both stray I-Disease runs are no entity
    #   pred: Drug d0 3-4, Drug d1 0-1 -> 2
    #   tp:   Drug d0 3-4 -> 1
    #   Disease  tp 0 pred 0 gold 1: P 0 (0/0 -> 0)  R 0/1 = 0  F1 0
    #   Drug     tp 1 pred 2 gold 2: P 1/2  R 1/2  F1 1/2
    #   overall  tp 1 pred 2 gold 3: P 1/2  R 1/3  F1 2*1/(2+3) = 2/5
    assert score_tags(gold, pred, "strict") == ScoreSet(
        overall=approx_prf(1 / 2, 1 / 3, 2 / 5, 1, 2, 3),
        per_type={
            "Disease": approx_prf(0.0, 0.0, 0.0, 0, 0, 1),
            "Drug": approx_prf(1 / 2, 1 / 2, 1 / 2, 1, 2, 2),
        },
    )


def test_label_only_in_a_stray_inside_tag_is_listed_in_strict_mode() -> None:
    # pred "I-Drug" after O: default mode reads a Drug entity, strict mode none; the label is
    # still listed in strict mode, with zero counts, so both modes have the same keys.
    gold = [["B-Disease", "O"]]
    pred = [["B-Disease", "I-Drug"]]
    strict = score_tags(gold, pred, "strict")
    default = score_tags(gold, pred, "default")
    assert list(strict.per_type) == list(default.per_type) == ["Disease", "Drug"]
    assert strict.per_type["Drug"] == PRF(0.0, 0.0, 0.0, 0, 0, 0)
    assert default.per_type["Drug"] == PRF(0.0, 0.0, 0.0, 0, 1, 0)
    # strict overall: tp 1, pred 1, gold 1 -> 1.0; default: tp 1, pred 2, gold 1 -> P 1/2,
    # R 1, F1 2/3
    assert strict.overall == PRF(1.0, 1.0, 1.0, 1, 1, 1)
    assert default.overall == approx_prf(1 / 2, 1.0, 2 / 3, 1, 2, 1)


# ---------------------------------------------------------------------------------------------
# Spans: matching rules


def test_exact_duplicate_prediction_is_a_false_positive() -> None:
    gold = [[Entity(0, 5, "Drug")]]
    pred = [[Entity(0, 5, "Drug"), Entity(0, 5, "Drug")]]
    # tp 1, pred 2, gold 1: P 1/2, R 1, F1 2*1/(2+1) = 2/3
    assert score_spans(gold, pred).overall == approx_prf(1 / 2, 1.0, 2 / 3, 1, 2, 1)
    # partial is not one-to-one: both predictions overlap the gold -> P 2/2, R 1/1
    assert score_spans(gold, pred, partial=True).overall == PRF(1.0, 1.0, 1.0, 2, 2, 1)
    # two identical golds need two identical predictions
    assert score_spans(pred, pred).overall == PRF(1.0, 1.0, 1.0, 2, 2, 2)


def test_partial_one_prediction_over_two_golds() -> None:
    gold = [[Entity(0, 4, "Disease"), Entity(9, 15, "Disease")]]
    pred = [[Entity(0, 15, "Disease")]]
    # exact: tp 0 -> all 0
    assert score_spans(gold, pred).overall == PRF(0.0, 0.0, 0.0, 0, 1, 2)
    # partial: correct preds 1/1 (tp 1); golds hit 2/2 -> recall 1.0 although tp/n_gold = 1/2
    assert score_spans(gold, pred, partial=True).overall == PRF(1.0, 1.0, 1.0, 1, 1, 2)


def test_partial_needs_one_shared_character_and_same_document() -> None:
    gold = [[Entity(0, 4, "Drug")], [Entity(0, 4, "Drug")]]
    # touching (4-8), zero-length inside (2-2), other label, then the right span in doc 1
    pred = [[Entity(4, 8, "Drug"), Entity(2, 2, "Drug"), Entity(0, 4, "Disease")], []]
    # Drug: correct 0/2, hit 0/2; Disease: correct 0/1, gold 0
    s = score_spans(gold, pred, partial=True)
    assert s.overall == PRF(0.0, 0.0, 0.0, 0, 3, 2)
    assert s.per_type == {
        "Disease": PRF(0.0, 0.0, 0.0, 0, 1, 0),
        "Drug": PRF(0.0, 0.0, 0.0, 0, 2, 2),
    }


def test_spans_ignore_text_and_source() -> None:
    gold = [[Entity(0, 4, "Drug", text="abcd", source="seed")]]
    pred = [[Entity(0, 4, "Drug", text=None, source="llm")]]
    assert score_spans(gold, pred).overall == PRF(1.0, 1.0, 1.0, 1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Empty inputs: no warnings, zeros as documented


@pytest.mark.filterwarnings("error")
def test_empty_predictions() -> None:
    gold = [["B-Drug", "I-Drug", "O"], ["O", "B-Disease"]]
    pred = [["O", "O", "O"], ["O", "O"]]
    golds = [[Entity(0, 9, "Drug")], [Entity(3, 8, "Disease")]]
    s = score(gold, pred, golds, [[], []])
    # gold 2 (Drug 1, Disease 1), pred 0: P 0/0 -> 0, R 0/2 = 0, F1 0
    for scores in all_sets(s):
        assert scores.overall == PRF(0.0, 0.0, 0.0, 0, 0, 2)
        assert scores.per_type == {
            "Disease": PRF(0.0, 0.0, 0.0, 0, 0, 1),
            "Drug": PRF(0.0, 0.0, 0.0, 0, 0, 1),
        }


@pytest.mark.filterwarnings("error")
def test_empty_gold() -> None:
    gold = [["O", "O"]]
    pred = [["B-Drug", "O"]]
    s = score(gold, pred, [[]], [[Entity(0, 5, "Drug")]])
    # pred 1, gold 0: P 0/1 = 0, R 0/0 -> 0, F1 0
    for scores in all_sets(s):
        assert scores.overall == PRF(0.0, 0.0, 0.0, 0, 1, 0)
        assert scores.per_type == {"Drug": PRF(0.0, 0.0, 0.0, 0, 1, 0)}


@pytest.mark.filterwarnings("error")
def test_no_entities_anywhere_is_zero_with_zero_support() -> None:
    s = score([["O", "O"], []], [["O", "O"], []], [[], []], [[], []])
    assert s.n_docs == 2
    for scores in all_sets(s):
        assert scores == ScoreSet(overall=PRF(0.0, 0.0, 0.0, 0, 0, 0), per_type={})


@pytest.mark.filterwarnings("error")
def test_zero_documents() -> None:
    s = score([], [], [], [])
    assert s.n_docs == 0
    for scores in all_sets(s):
        assert scores == ScoreSet(overall=PRF(0.0, 0.0, 0.0, 0, 0, 0), per_type={})
    assert score([], []).span_exact is None
    assert "0 documents" in s.summary()


def test_prf_from_counts_zero_division_and_checks() -> None:
    assert PRF.from_counts(0, 0, 0) == PRF(0.0, 0.0, 0.0, 0, 0, 0)
    assert PRF.from_counts(0, 3, 0) == PRF(0.0, 0.0, 0.0, 0, 3, 0)
    assert PRF.from_counts(0, 0, 3) == PRF(0.0, 0.0, 0.0, 0, 0, 3)
    # tp 2, pred 4, gold 2: P 1/2, R 1, F1 2*2/(4+2) = 2/3
    assert PRF.from_counts(2, 4, 2) == approx_prf(1 / 2, 1.0, 2 / 3, 2, 4, 2)
    with pytest.raises(ValueError, match="inconsistent counts"):
        PRF.from_counts(3, 2, 5)


# ---------------------------------------------------------------------------------------------
# Input errors


def test_length_mismatch_names_the_document() -> None:
    gold = [["O"], ["O", "B-Drug"], ["O"]]
    with pytest.raises(ValueError, match="document 1: gold has 2 tags, pred has 1"):
        score_tags(gold, [["O"], ["O"], ["O", "O"]], "strict")
    with pytest.raises(ValueError, match="gold has 3 documents, pred has 2"):
        score_tags(gold, gold[:2], "default")
    with pytest.raises(ValueError, match="gold has 1 documents, pred has 0"):
        score_spans([[]], [])


def test_bad_tags_and_arguments_are_refused() -> None:
    for bad in ["E-Drug", "B-", "Drug", "B_Drug", "", "I--Drug"]:
        with pytest.raises(ValueError, match=r"pred document 0, token 1: tag .* is not IOB2"):
            score_tags([["O", "O"]], [["O", bad]], "default")
    with pytest.raises(ValueError, match="mode must be"):
        score_tags([["O"]], [["O"]], "lenient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both gold_entities and pred_entities"):
        score([["O"]], [["O"]], gold_entities=[[]])
    with pytest.raises(ValueError, match="1 tag sequences but 2 entity lists"):
        score([["O"]], [["O"]], [[], []], [[], []])
    with pytest.raises(ValueError, match=r"gold document 0: bad entity offsets \(5, 3\)"):
        score_spans([[Entity(5, 3, "Drug")]], [[]])


def test_tuples_and_other_sequences_are_accepted() -> None:
    gold = (("B-Drug", "I-Drug"),)
    pred = [("B-Drug", "I-Drug")]
    for mode in ("strict", "default"):
        assert score_tags(gold, pred, mode).overall == PRF(1.0, 1.0, 1.0, 1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Serialization and summary


def test_json_round_trip() -> None:
    s = score(GOLD_TAGS, PRED_TAGS, GOLD_ENTITIES, PRED_ENTITIES)
    assert Scores.from_dict(json.loads(s.to_json())) == s
    assert Scores.from_dict(json.loads(s.to_json(indent=None))) == s
    d = json.loads(s.to_json())
    assert d["n_docs"] == 4
    assert d["seqeval_strict"]["per_type"]["Drug"] == {
        "precision": 1.0,
        "recall": 0.75,
        "f1": 6 / 7,
        "tp": 3,
        "n_pred": 3,
        "n_gold": 4,
    }
    tags_only = score(GOLD_TAGS, PRED_TAGS)
    assert tags_only.span_exact is None and tags_only.span_partial is None
    assert json.loads(tags_only.to_json())["span_partial"] is None
    assert Scores.from_dict(json.loads(tags_only.to_json())) == tags_only


def test_summary_table() -> None:
    text = score(GOLD_TAGS, PRED_TAGS, GOLD_ENTITIES, PRED_ENTITIES).summary()
    lines = text.splitlines()
    assert lines[0] == "entity-level scores, 4 documents (seqeval strict, IOB2)"
    assert lines[1].split() == ["P", "R", "F1", "tp", "pred", "gold"]
    assert lines[2].split() == ["Disease", "0.2500", "0.3333", "0.2857", "1", "4", "3"]
    assert lines[3].split() == ["Drug", "1.0000", "0.7500", "0.8571", "3", "3", "4"]
    assert lines[4].split() == ["overall", "0.5714", "0.5714", "0.5714", "4", "7", "7"]
    assert lines[-1].split() == ["span", "partial", "0.7143", "0.7143", "0.7143", "5", "7", "7"]
    assert "span exact" not in score(GOLD_TAGS, PRED_TAGS).summary()


# ---------------------------------------------------------------------------------------------
# Real data (NCBI-disease dev) and seqeval as the reference


def read_conll(path: Path, limit: int) -> list[list[str]]:
    """Tags of the first `limit` sentences of a token<TAB>tag file (blank line between)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                current.append(line.split("\t")[1])
            elif current:
                sentences.append(current)
                current = []
            if len(sentences) == limit:
                return sentences
    return sentences + ([current] if current else [])


def read_sentence_entities(path: Path, limit: int) -> list[list[Entity]]:
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(limit)]
    return [[Entity.from_row(e) for e in row["entities"]] for row in rows]


def test_real_ncbi_gold_against_itself() -> None:
    tags = read_conll(NCBI_CONLL, 200)
    entities = read_sentence_entities(NCBI_SENTENCES, 200)
    assert len(tags) == len(entities) == 200
    n_entities = sum(tag.startswith("B-") for sentence in tags for tag in sentence)
    assert n_entities == sum(map(len, entities)) > 100
    s = score(tags, tags, entities, entities)
    for scores in all_sets(s):
        assert_perfect(scores, {"Disease": n_entities})


def assert_matches_seqeval(
    gold: list[list[str]], pred: list[list[str]], mode: str, ours: ScoreSet
) -> None:
    if not gold:  # seqeval refuses an empty corpus (TypeError); ours is zero, tested above
        return
    kwargs = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
    micro = report.pop("micro avg")
    report.pop("macro avg")
    report.pop("weighted avg")
    assert set(report) <= set(ours.per_type)
    for label, prf in ours.per_type.items():
        ref = report.get(label)
        if ref is None:  # a label seqeval reads no entity of (stray I- in strict mode)
            assert prf.tp == prf.n_pred == prf.n_gold == 0
            continue
        got = (prf.precision, prf.recall, prf.f1, prf.n_gold)
        want = (ref["precision"], ref["recall"], ref["f1-score"], ref["support"])
        assert got == pytest.approx(want), label
    o = ours.overall
    got = (o.precision, o.recall, o.f1, o.n_gold)
    want = (micro["precision"], micro["recall"], micro["f1-score"], micro["support"])
    assert got == pytest.approx(want)


def test_real_ncbi_perturbed_matches_seqeval() -> None:
    gold = read_conll(NCBI_CONLL, 200)
    pred = []
    for i, sentence in enumerate(gold):
        if i % 5 == 0:  # missed everything
            pred.append(["O"] * len(sentence))
        elif i % 3 == 0:  # B- written as I-: lost in strict mode, kept in default mode
            pred.append(["I-" + t[2:] if t.startswith("B-") else t for t in sentence])
        elif i % 7 == 0 and len(sentence) > 1:  # entities cut short at the end, token 0 a Drug
            cut = [
                t if nxt.startswith("I-") else "O"
                for t, nxt in zip(sentence, sentence[1:], strict=False)
            ]
            pred.append(["B-Drug", *cut[1:], "O"])
        else:
            pred.append(list(sentence))
    strict = score_tags(gold, pred, "strict")
    default = score_tags(gold, pred, "default")
    assert strict.overall.n_pred < default.overall.n_pred
    assert 0.0 < strict.overall.f1 < default.overall.f1 < 1.0
    assert_matches_seqeval(gold, pred, "strict", strict)
    assert_matches_seqeval(gold, pred, "default", default)


TAG = st.sampled_from(["O", "O", "O", "B-Drug", "I-Drug", "B-Disease", "I-Disease"])
TAG_PAIRS = st.lists(st.lists(st.tuples(TAG, TAG), max_size=10), max_size=5)


@settings(max_examples=200, deadline=None)
@given(TAG_PAIRS)
def test_random_tags_match_seqeval(docs: list[list[tuple[str, str]]]) -> None:
    gold = [[g for g, _ in doc] for doc in docs]
    pred = [[p for _, p in doc] for doc in docs]
    for mode in ("strict", "default"):
        assert_matches_seqeval(gold, pred, mode, score_tags(gold, pred, mode))
