"""Mention replacement: offsets, abbreviations, determinism, which notes are copied, and the
config errors."""

from __future__ import annotations

import random

import pytest

from raysynth.annotate.augment import Augmenter, abbreviation, replace_mentions
from raysynth.annotate.config import AnnotateConfig, AugmentConfig, KnowledgeBase
from raysynth.documents import Entity
from raysynth.errors import ConfigError
from raysynth.train.data import in_dev

TEXT = "Asthma is common. Patients with chronic gout and asthma were seen."


def entities(text: str, *mentions: str) -> list[Entity]:
    out = []
    for mention in mentions:
        start = text.index(mention, out[-1].end if out else 0)
        out.append(Entity(start, start + len(mention), "Disease", mention, "seed"))
    return out


def check_spans(text: str, found: list[Entity]) -> None:
    for e in found:
        assert text[e.start : e.end] == e.text


@pytest.mark.parametrize(
    ("term", "short"),
    [
        ("Huntington disease", "HD"),
        ("ataxia-telangiectasia", "AT"),
        ("Duchenne muscular dystrophy", "DMD"),
        ("asthma", None),
    ],
)
def test_abbreviation(term, short):
    assert abbreviation(term) == short


def test_replacement_keeps_context_and_moves_offsets():
    plain = AugmentConfig(define_abbreviation=0, abbreviation_only=0)
    old = entities(TEXT, "Asthma", "chronic gout", "asthma")
    text, new = replace_mentions(TEXT, old, lambda _: "breast cancer", random.Random(0), plain)
    assert (
        text == "Breast cancer is common. Patients with breast cancer and breast cancer were seen."
    )
    assert [e.text for e in new] == ["Breast cancer", "breast cancer", "breast cancer"]
    assert {e.source for e in new} == {"replaced"}
    check_spans(text, new)


def test_a_defined_abbreviation_follows_its_replaced_long_form():
    text = "Huntington disease (HD) is dominant; in HD the onset is late, unlike asthma."
    old = [*entities(text, "Huntington disease", "HD", "HD", "asthma")]
    terms = iter(["Crohn disease", "gout", "Marfan syndrome"])
    always_short = AugmentConfig(define_abbreviation=1.0, abbreviation_only=0)
    new_text, new = replace_mentions(
        text, old, lambda _: next(terms), random.Random(0), always_short
    )
    assert new_text == "Crohn disease (CD) is dominant; in CD the onset is late, unlike gout."
    assert [e.text for e in new] == ["Crohn disease", "CD", "CD", "gout"]
    check_spans(new_text, new)
    # a new term without initials leaves the short form as it was
    terms = iter(["asthma", "gout"])
    new_text, new = replace_mentions(
        text, old, lambda _: next(terms), random.Random(0), always_short
    )
    assert new_text.startswith("Asthma (HD) is dominant; in HD the onset")
    check_spans(new_text, new)


@pytest.mark.parametrize(
    ("fractions", "expected", "labelled"),
    [
        ((1.0, 0.0), "with Huntington disease (HD) and", ["Huntington disease", "HD"]),
        ((0.0, 1.0), "with HD and", ["HD"]),
    ],
)
def test_abbreviations_are_labelled(fractions, expected, labelled):
    config = AugmentConfig(define_abbreviation=fractions[0], abbreviation_only=fractions[1])
    old = entities(TEXT, "chronic gout")
    text, new = replace_mentions(
        TEXT, old, lambda _: "Huntington disease", random.Random(1), config
    )
    assert expected in text
    assert [e.text for e in new] == labelled
    check_spans(text, new)


def test_qualifier_and_coordination_forms_are_one_mention():
    old = entities(TEXT, "chronic gout")
    qualified = AugmentConfig(define_abbreviation=0, abbreviation_only=0, modifier=1.0,
                              modifiers=["hereditary"])  # fmt: skip
    text, new = replace_mentions(TEXT, old, lambda _: "breast cancer", random.Random(2), qualified)
    assert "with hereditary breast cancer and" in text
    assert [e.text for e in new] == ["hereditary breast cancer"]

    coordinated = AugmentConfig(define_abbreviation=0, abbreviation_only=0, coordinate=1.0)
    seen = []
    text, new = replace_mentions(
        TEXT, old, lambda _: "breast cancer", random.Random(3), coordinated,
        lambda label, term: seen.append((label, term)) or "ovarian cancer",
    )  # fmt: skip
    assert seen == [("Disease", "breast cancer")]
    [mention] = new
    assert mention.text in {f"breast {c} ovarian cancer" for c in ("and", "or", "/")}
    check_spans(text, new)
    # A one-word term cannot be coordinated; without a partner, the term is written alone.
    for term, partner in (("asthma", "ovarian cancer"), ("breast cancer", None)):
        text, new = replace_mentions(
            TEXT, old, lambda _, t=term: t, random.Random(3), coordinated,
            lambda label, t, p=partner: p,
        )  # fmt: skip
        assert [e.text for e in new] == [term]


def test_deficiency_form_is_one_mention():
    old = entities(TEXT, "chronic gout")
    config = AugmentConfig(define_abbreviation=0, abbreviation_only=0, deficiency=1.0,
                           products=[{"path": "unused.txt"}])  # fmt: skip
    written = set()
    for seed in range(8):
        text, new = replace_mentions(
            TEXT, old, lambda _: "gout", random.Random(seed), config, product=lambda: "G6PD"
        )
        [mention] = new
        written.add(mention.text)
        check_spans(text, new)
    assert written == {"G6PD deficiency", "deficiency of G6PD"}
    # No product to draw: the term is written as it is.
    text, new = replace_mentions(TEXT, old, lambda _: "gout", random.Random(0), config)
    assert [e.text for e in new] == ["gout"]


def test_augmenter_draws_products_as_running_text_writes_them(tmp_path, kb):
    products = tmp_path / "products.txt"
    products.write_text("Glutathione Reductase\nComplement C2a\nCarboxypeptidases\n")
    config = AugmentConfig(copies=20, define_abbreviation=0, abbreviation_only=0,
                           deficiency=1.0, products=[{"path": str(products)}])  # fmt: skip
    written = {
        e["text"] for copy in Augmenter(config, kb, seed=3)([note("a")]) for e in copy["entities"]
    }
    assert written == {
        f"{how}".format(name)
        for how in ("{} deficiency", "deficiency of {}")
        for name in ("glutathione reductase", "complement C2a")
    }


def test_coordination_partners_share_the_last_word(tmp_path):
    lexicon = tmp_path / "diseases.txt"
    # 'X of prematurity' share a last word but make no coordination; nor does '... 2A'.
    alone = ["Huntington disease", "anemia of prematurity", "retinopathy of prematurity",
             "dyshormonogenesis 2A", "nephronophthisis 2A"]  # fmt: skip
    terms = ["breast cancer", "ovarian Cancer", *alone]
    lexicon.write_text("\n".join(terms), encoding="utf-8")
    kb = KnowledgeBase(lexicons={"Disease": [{"path": str(lexicon)}]})
    config = AugmentConfig(copies=30, define_abbreviation=0, abbreviation_only=0, coordinate=1.0)
    written = {
        e["text"] for copy in Augmenter(config, kb, seed=1)([note("a")]) for e in copy["entities"]
    }
    assert "Huntington disease" in written  # no other term ends in 'disease'
    assert written - set(alone) <= {
        f"{a} {c} {b}" for a, b in (("breast", "ovarian Cancer"), ("ovarian", "breast cancer"))
        for c in ("and", "or", "/")
    }  # fmt: skip
    assert len(written) > 1


def note(note_id: str, status: str = "ok", label: str = "Disease") -> dict:
    found = [e.to_row() for e in entities(TEXT, "chronic gout")]
    for e in found:
        e["label"] = label
    return {"note_id": note_id, "text": TEXT, "entities": found, "status": status,
            "reason": None, "annotator": "{}", "usage": None}  # fmt: skip


@pytest.fixture
def kb(tmp_path) -> KnowledgeBase:
    lexicon = tmp_path / "diseases.txt"
    terms = ["cystic fibrosis", "Huntington disease", "migraine", "psoriasis", "tuberculosis"]
    lexicon.write_text("\n".join(terms), encoding="utf-8")
    return KnowledgeBase(lexicons={"Disease": [{"path": str(lexicon)}]})


def test_augmenter_copies_ok_notes_deterministically(kb):
    notes = [note("a"), note("b"), note("q", status="quarantined"), note("x", label="Drug")]
    augment = Augmenter(AugmentConfig(copies=3), kb, seed=7)
    copies = augment(notes)
    assert [c["note_id"] for c in copies] == [f"{n}~r{k}" for n in "ab" for k in (1, 2, 3)]
    assert copies == Augmenter(AugmentConfig(copies=3), kb, seed=7)(notes)
    assert copies != Augmenter(AugmentConfig(copies=3), kb, seed=8)(notes)
    assert len({c["text"] for c in copies}) > 1
    for copy in copies:
        assert copy["status"] == "ok" and copy["entities"]
        check_spans(copy["text"], [Entity.from_row(e) for e in copy["entities"]])
        assert "Patients with " in copy["text"]


def test_a_copy_is_held_out_with_its_note():
    ids = [f"note-{i}" for i in range(200)]
    for doc_id in ids:
        assert in_dev(f"{doc_id}~r2", 0.3, 5) == in_dev(doc_id, 0.3, 5)
    assert 20 < sum(in_dev(d, 0.3, 5) for d in ids) < 100


def test_augment_config_errors(tmp_path, kb):
    base = {"labels": {"Disease": "a disease"}}
    with pytest.raises(ValueError, match="augment: needs `augment.lexicons` or a `kb`"):
        AnnotateConfig.model_validate({**base, "augment": {}})
    with pytest.raises(ValueError, match="define_abbreviation \\+ abbreviation_only"):
        AugmentConfig(define_abbreviation=0.7, abbreviation_only=0.5)
    with pytest.raises(ValueError, match="deficiency: needs at least one lexicon file"):
        AugmentConfig(deficiency=0.2)
    with pytest.raises(ValueError, match="\\+ modifier \\+ coordinate \\+ deficiency: more"):
        AugmentConfig(modifier=0.5, coordinate=0.5)
    with pytest.raises(ValueError, match="modifier: needs at least one of `modifiers`"):
        AugmentConfig(modifier=0.2, modifiers=[])
    missing = {"Disease": [{"path": str(tmp_path / "nowhere.txt")}]}
    with pytest.raises(ConfigError, match="augment.lexicons.Disease.0.path: no such lexicon"):
        Augmenter(AugmentConfig(lexicons=missing), kb, seed=0)
