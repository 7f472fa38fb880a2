"""Clean-up, seed location tiers and duplicate keys, with tables of offsets."""

from __future__ import annotations

import pytest

from raysynth.generate.postprocess import clean, exact_key, locate, near_keys, process, seed_spans


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "<|im_start|>assistant\nSure! Here is the note:\n\nPt has asthma.\n\n"
            "I hope this helps!<|im_end|>",
            "Pt has asthma.",
        ),
        (
            "Here is a sentence: BRCA1 mutations cause breast cancer.",
            "BRCA1 mutations cause breast cancer.",
        ),
        ("```\nPatient stable on aspirin.\n```", "Patient stable on aspirin."),
        ("Write a note about asthma.\nPatient wheezing.", "Patient wheezing."),
        (  # a base model's web-text markup
            "<em>CFTR</em> moves CO<sub>2</sub> in <strong>cystic fibrosis</strong>.",
            "CFTR moves CO2 in cystic fibrosis.",
        ),
        (
            "Two mutations.</p><p>One <i>de novo</i> (p<b, a>c).",
            "Two mutations. One de novo (p<b, a>c).",
        ),
    ],
)
def test_clean_strips_artefacts_echo_and_meta_text(raw, expected):
    assert clean(raw, ["Write a note about asthma."]) == expected


TEXT = "Type 2 Diabetes mellitus and asthmaa; aspirin, then Aspirin again. Goutish."


@pytest.mark.parametrize(
    ("mention", "tier", "spans"),
    [
        ("aspirin", "exact", [(38, 45)]),
        ("diabetes mellitus", "case", [(7, 24)]),
        ("asthma", "fuzzy", [(29, 36)]),
        ("gout", "missing", []),  # inside "Goutish": not a word of its own
        ("hepatitis", "missing", []),
    ],
)
def test_locate_tiers(mention, tier, spans):
    assert locate(TEXT, mention) == (tier, spans)


@pytest.mark.parametrize(
    ("text", "mention", "found"),
    [
        ("Hypertrophic cardiomyopathy was treated.", "hypertrophic cardiomyopathie", True),
        ("A treatment for hypertrophic cardiomyopathy.", "hypertrophic cardiomyopathy 13", False),
        ("Recessive nonsyndromic deafness, which is rare.", "nonsyndromic deafness 104", False),
        ("Signs such as angiokeratoma.", "skin angiokeratoma", False),
        ("Patients with metabolism disorders.", "metabolic disorders", True),
    ],
)
def test_fuzzy_tier_keeps_the_seeds_word_boundaries(text, mention, found):
    tier, spans = locate(text, mention)
    assert (tier == "fuzzy") == found
    assert bool(spans) == found


def test_seed_spans_are_real_offsets_and_missing_seeds_are_recorded():
    seeds = [
        {"text": "diabetes mellitus", "label": "DISEASE"},
        {"text": "Diabetes", "label": "DISEASE"},  # nested in the longer one: dropped, counted
        {"text": "gout", "label": "DISEASE"},
    ]
    entities, matches, dropped = seed_spans(TEXT, seeds)
    assert [(e["start"], e["end"], e["source"]) for e in entities] == [(7, 24, "seed")]
    assert all(TEXT[e["start"] : e["end"]] == e["text"] for e in entities)
    assert [m["match"] for m in matches] == ["case", "exact", "missing"]
    assert matches[2]["start"] is None and dropped == 1


def test_duplicate_keys():
    a = "The patient was admitted with chest pain and treated with aspirin and heparin today."
    assert exact_key(a) == exact_key("  " + a.upper())
    assert set(near_keys(a)) & set(near_keys(a.replace("chest pain", "chest pains")))
    assert not set(near_keys(a)) & set(near_keys("Completely different words in this one note."))


def test_process_keeps_failed_and_short_rows_with_a_reason():
    failed = process({"llm_status": "error", "llm_error": "http 500"}, 10, 100)
    assert failed["status"] == "failed" and failed["reason"] == "llm: http 500"
    short = process({"llm_status": "ok", "response": "Sure!", "messages": []}, 10, 100)
    assert short["status"] == "removed" and short["reason"] == "too short after cleaning"
