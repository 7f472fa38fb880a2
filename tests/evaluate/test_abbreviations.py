"""Abbreviations defined in a document carry their long form's predicted label."""

from raysynth.alignment import default_tokenize, entities_to_tags
from raysynth.annotate.kb import DictionaryMatcher, dictionary_baseline
from raysynth.documents import Document, Entity
from raysynth.evaluate.abbreviations import (
    find_abbreviations,
    label_abbreviations,
    propagate_abbreviation_tags,
    propagate_abbreviations,
)
from raysynth.evaluate.predict import prediction_row

TEXT = (
    "The mutation underlying Huntington disease (HD) is a CAG repeat. "
    "Most HD patients carry 40 repeats; the HDL level was normal."
)
LONG = Entity(24, 42, "Disease", "Huntington disease")


def spans_of(text: str, word: str) -> list[tuple[int, int]]:
    found, start = [], text.find(word)
    while start >= 0:
        found.append((start, start + len(word)))
        start = text.find(word, start + 1)
    return found


def test_pairs_with_offsets_including_reordered_initials():
    pairs = {a.short: TEXT[a.long_start : a.long_end] for a in find_abbreviations(TEXT)}
    assert pairs == {"HD": "Huntington disease"}
    latin = "Repeats in mice. Myotonic dystrophy (DM) is dominant in patients (P<0.05)."
    pairs = {a.short: latin[a.long_start : a.long_end] for a in find_abbreviations(latin)}
    assert pairs == {"DM": "Myotonic dystrophy"}  # 'dystrophia myotonica'; not 'P<0.05'


def test_short_form_takes_the_long_forms_label_as_a_whole_word():
    result = propagate_abbreviations(TEXT, [LONG])
    added = [(e.start, e.end) for e in result if e.source == "abbreviation"]
    later = TEXT.index("HD patients")
    assert added == [(44, 46), (later, later + 2)]
    assert all(TEXT[s:e] == "HD" for s, e in added)  # never inside 'HDL'
    assert all(e.label == "Disease" for e in result)


def test_short_form_loses_its_prediction_where_the_long_form_has_none():
    text = "The ataxia telangiectasia mutated (ATM) gene; ATM binds DNA."
    atm = [Entity(s, e, "Disease") for s, e in spans_of(text, "ATM")]
    assert propagate_abbreviations(text, atm) == []
    # a prediction covering under half of the long form neither adds nor removes
    partial = [Entity(4, 10, "Disease")] + atm
    assert propagate_abbreviations(text, partial) == partial


def test_training_labels_only_gain_short_forms():
    """The step for training labels adds the short forms of a labelled long form, and keeps
    a label on a short form whose long form holds none (the lexicons may lack the term)."""
    labels = label_abbreviations(TEXT, [LONG])
    assert [TEXT[e.start : e.end] for e in labels] == ["Huntington disease", "HD", "HD"]
    text = "An atrioventricular septal defect (AVSD) was repaired; AVSD recurred."
    seeds = [Entity(s, e, "Disease", "AVSD", "seed") for s, e in spans_of(text, "AVSD")]
    assert label_abbreviations(text, seeds) == seeds


def test_tags_change_only_on_the_short_forms():
    spans = default_tokenize(TEXT)
    tags, _ = entities_to_tags([LONG], spans)
    orphan = next(i for i, (s, _) in enumerate(spans) if TEXT[s:].startswith("CAG"))
    tags[orphan] = "I-Disease"  # an I- without B-: strict scoring drops it; it must stay
    new = propagate_abbreviation_tags(TEXT, tags, spans)
    changed = {TEXT[s:e] for (s, e), a, b in zip(spans, tags, new, strict=True) if a != b}
    assert changed == {"HD"}
    assert new[orphan] == "I-Disease"


def test_model_rows_and_dictionary_baseline_use_the_step():
    later = TEXT.index("HD patients")
    gold = [LONG, Entity(44, 46, "Disease"), Entity(later, later + 2, "Disease")]
    doc = Document("d1", TEXT, gold, None, default_tokenize(TEXT))
    tags, _ = entities_to_tags([LONG], doc.token_spans)
    plain = prediction_row(doc, tags, {"Disease"})
    with_step = prediction_row(doc, tags, {"Disease"}, abbreviations=True)
    assert len(plain["pred"]) == 1 and len(with_step["pred"]) == 3
    assert with_step["pred_tags"] == with_step["gold_tags"]
    matcher = DictionaryMatcher({"Disease": ["Huntington disease"]})
    f1 = [
        dictionary_baseline([doc], matcher, step).scores.seqeval_strict.overall.f1
        for step in (False, True)
    ]
    assert f1[0] < 0.6 and f1[1] == 1.0


def test_long_form_stops_at_any_whitespace_and_a_second_definition_keeps_the_first():
    text = "Electroencephalography\nHuntington disease (HD) is rare. HD kills. High density (HD)."
    (first, second) = find_abbreviations(text)
    assert text[first.long_start : first.long_end] == "Huntington disease"
    assert text[second.long_start : second.long_end] == "High density"
    start = text.index("Huntington")
    result = propagate_abbreviations(text, [Entity(start, start + 18, "Disease")])
    assert [text[e.start : e.end] for e in result] == ["Huntington disease", "HD", "HD", "HD"]


def test_a_short_form_before_a_stray_inside_tag_is_left_alone():
    text = "Huntington disease (HD) is rare. Most HD patients die."
    spans = default_tokenize(text)
    tags, _ = entities_to_tags([LONG_AT_0], spans)
    stray = next(i for i, (s, _) in enumerate(spans) if text[s:].startswith("patients"))
    tags[stray] = "I-Disease"
    new = propagate_abbreviation_tags(text, tags, spans)
    assert new[stray - 1] == "O" and new[stray] == "I-Disease"  # not 'HD patients'
    assert new.count("B-Disease") == 2  # the long form and the '(HD)' after it


LONG_AT_0 = Entity(0, 18, "Disease", "Huntington disease")
