"""Recipes for the generate tests: small lexicon files written per test, or the shared ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysynth.generate.recipe import Recipe

DISEASES = ["asthma", "diabetes mellitus", "breast cancer", "hepatitis B", "Marfan syndrome"]
DRUGS = ["metformin", "aspirin", "ibuprofen", "warfarin"]


def recipe_dict(lexicon_dir: Path, **overrides) -> dict:
    (lexicon_dir / "diseases.txt").write_text("\n".join(DISEASES) + "\n", encoding="utf-8")
    (lexicon_dir / "drugs.tsv").write_text(
        "term\tterm_type\n" + "".join(f"{d}\tlabel\n" for d in DRUGS), encoding="utf-8"
    )
    data = {
        "note_types": {"progress note": 2, "discharge summary": 1},
        "specialties": ["cardiology", "oncology"],
        "entity_types": [
            {
                "label": "DISEASE",
                "definition": "a disease",
                "lexicons": [{"path": str(lexicon_dir / "diseases.txt")}],
                "per_note": [1, 2],
            },
            {
                "label": "DRUG",
                "definition": "a medication",
                "lexicons": [{"path": str(lexicon_dir / "drugs.tsv")}],
                "per_note": [0, 1],
            },
        ],
        "num_notes": 10,
        "seed": 1,
    }
    data.update(overrides)
    return data


@pytest.fixture
def small_recipe(tmp_path) -> Recipe:
    return Recipe.model_validate(recipe_dict(tmp_path))
