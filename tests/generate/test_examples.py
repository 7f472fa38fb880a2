"""Recipes with example notes: what a base model is prompted with (it follows examples, not
instructions)."""

from __future__ import annotations

import pytest

from raysynth.errors import ConfigError
from raysynth.generate.prompts import Expander
from raysynth.generate.recipe import Recipe, check_recipe, recipe_hash
from raysynth.llm.config import LocalBackend
from tests.generate.conftest import recipe_dict

EXAMPLES = [f"Keywords: term {i}\nSentence: Example sentence number {i}." for i in range(6)]


def _recipe(tmp_path, blocks=EXAMPLES, **overrides) -> Recipe:
    path = tmp_path / "examples.txt"
    # comments anywhere, and blank lines holding spaces, as a hand-edited file has them
    body = "\n  \n# a comment line\n".join(blocks)
    path.write_text("# a comment block\n\n\n" + body + "\n", encoding="utf-8")
    raw = recipe_dict(
        tmp_path,
        template="sentence_examples_v1",
        prompt_style="completion",
        examples=str(path),
        examples_per_prompt=2,
        num_notes=20,
    )
    return Recipe.model_validate({**raw, **overrides})


def test_each_prompt_draws_its_own_examples_and_ends_where_the_note_begins(tmp_path):
    expander = Expander(_recipe(tmp_path))
    rows = [expander.row(i) for i in range(20)]
    draws = set()
    for row in rows:
        prompt = row["prompt"]
        assert row["messages"] is None and prompt.endswith("Sentence:")
        shown = [e for e in EXAMPLES if e in prompt]
        assert len(shown) == 2 and "comment" not in prompt
        seeds = [s["text"] for s in row["seed_entities"]]
        assert all(s in prompt.rsplit("Keywords:", 1)[1] for s in seeds)
        draws.add(tuple(shown))
    assert len(draws) > 5  # a fresh draw per prompt, not one set copied into every note


def test_examples_are_part_of_the_corpus_identity(tmp_path):
    recipe = _recipe(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    changed = _recipe(other, blocks=[*EXAMPLES[:5], "Keywords: x\nSentence: Another one."])
    assert recipe_hash(recipe) != recipe_hash(changed)
    without = Recipe.model_validate(recipe_dict(tmp_path))
    assert "examples" not in without.model_dump() and "examples_per_prompt" not in (
        without.model_dump()
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"examples": "/nowhere/examples.txt"}, "generate.recipe.examples: no such file"),
        ({"examples_per_prompt": 7}, "holds 6 example(s), fewer than examples_per_prompt (7)"),
        ({"template": "sentence_v1"}, "examples: template sentence_v1 shows none"),
        ({"examples": None}, "examples: template sentence_examples_v1 shows examples"),
    ],
)
def test_bad_examples_fail_at_load_time(tmp_path, change, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_recipe(_recipe(tmp_path, **change))


def test_a_base_model_refuses_chat_prompts(tmp_path):
    from raysynth.annotate.config import AnnotateConfig
    from raysynth.generate.config import GenerateConfig
    from raysynth.generate.stage import generate

    gemma = {"kind": "local", "bundled": "gemma3-270m"}
    chat = recipe_dict(tmp_path, template="sentence_v1")
    with pytest.raises(ConfigError, match="generate.backend.bundled: gemma3-270m is a base"):
        generate(GenerateConfig(recipe=chat, backend=gemma).resolved(tmp_path), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before any work
    with pytest.raises(ValueError, match="backend.bundled: gemma3-270m is a base model"):
        AnnotateConfig(labels={"Disease": "a disease"}, backend=gemma)
    with pytest.raises(ValueError, match="give gguf or bundled, not both"):
        LocalBackend(gguf=tmp_path / "m.gguf", bundled="gemma3-270m")
