"""Recipes, lexicons and prompt expansion: deterministic, and bad recipes fail at load time."""

from __future__ import annotations

import random

import pyarrow.parquet as pq
import pytest
import yaml

from raysynth.config import load_config
from raysynth.errors import ConfigError
from raysynth.generate.lexicon import keep_term, load_lexicon
from raysynth.generate.prompts import Expander, load_template, write_prompt_shards
from raysynth.generate.recipe import LexiconFile, LexiconFilters, Recipe, recipe_hash
from raysynth.schema import PROMPTS
from tests.generate.conftest import recipe_dict


def _rows(recipe: Recipe, n: int = 10) -> list[dict]:
    expander = Expander(recipe)
    return [expander.row(i) for i in range(n)]


def test_same_recipe_and_seed_give_the_same_prompts_and_ids(small_recipe, tmp_path):
    first = write_prompt_shards(small_recipe, tmp_path / "a", shard_rows=4)
    again = write_prompt_shards(small_recipe, tmp_path / "b", shard_rows=4)
    assert [p.name for p in first] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]
    tables = [pq.read_table(p) for p in first]
    assert all(t.schema.equals(PROMPTS) for t in tables)
    for a, b in zip(first, again, strict=True):
        assert pq.read_table(a).to_pylist() == pq.read_table(b).to_pylist()
    ids = [i for t in tables for i in t.column("note_id").to_pylist()]
    assert len(ids) == len(set(ids)) == 10
    # A larger run extends a smaller one: the first note_ids and prompts are the same.
    bigger = small_recipe.model_copy(update={"num_notes": 30})
    assert _rows(bigger, 10) == _rows(small_recipe, 10)


def test_a_different_seed_gives_different_prompts_and_ids(small_recipe):
    other = small_recipe.model_copy(update={"seed": 2})
    a, b = _rows(small_recipe), _rows(other)
    assert not {r["note_id"] for r in a} & {r["note_id"] for r in b}
    assert [r["seed_entities"] for r in a] != [r["seed_entities"] for r in b]


def test_prompts_carry_their_seeds_and_recipe_fields(small_recipe):
    for row in _rows(small_recipe):
        user = row["messages"][1]["content"]
        assert 1 <= len(row["seed_entities"]) <= 3
        for seed in row["seed_entities"]:
            assert seed["text"] in user
        assert row["note_type"] in small_recipe.note_types
        assert row["specialty"] in small_recipe.specialties and row["language"] == "English"
    completion = small_recipe.model_copy(update={"prompt_style": "completion"})
    row = _rows(completion, 1)[0]
    assert row["messages"] is None and row["prompt"].rstrip().endswith("Note:")


PROTEINS = ["synaptophysin", "dystrophin", "ataxin"]


def _with_negatives(tmp_path, **negatives) -> dict:
    (tmp_path / "proteins.txt").write_text("\n".join(PROTEINS) + "\n", encoding="utf-8")
    lexicons = [{"path": str(tmp_path / "proteins.txt")}]
    return recipe_dict(tmp_path, negatives=[{"lexicons": lexicons, **negatives}])


def test_negative_terms_are_asked_for_but_never_seeds(tmp_path):
    recipe = Recipe.model_validate(
        {**_with_negatives(tmp_path, per_note=[1, 1]), "no_seed_fraction": 0.3}
    )
    rows = _rows(recipe, 40)
    for row in rows:
        user = row["messages"][1]["content"]
        asked = [p for p in PROTEINS if p in user]
        assert len(asked) == (1 if row["seed_entities"] else 0)
        assert not {s["text"] for s in row["seed_entities"]} & set(PROTEINS)
    assert any(not row["seed_entities"] for row in rows)  # no-seed prompts exist, bare


def test_unseeded_negatives_ask_for_the_terms_and_no_entity(tmp_path):
    """Prompts with no seed get the negatives too, and keep the ban on naming an entity:
    sentences about genes with nothing to label."""
    raw = {**_with_negatives(tmp_path, per_note=[1, 1]), "no_seed_fraction": 0.5}
    recipe = Recipe.model_validate({**raw, "unseeded_negatives": True})
    parts = load_template(recipe.template).parts
    rows = _rows(recipe, 40)
    unseeded = [r["messages"][1]["content"] for r in rows if not r["seed_entities"]]
    assert unseeded
    for user in unseeded:
        asked = [p for p in PROTEINS if p in user]
        assert len(asked) == 1
        assert parts["seeds"].split("{mentions}")[0] + asked[0] in user
        assert parts["no_seeds"] in user
    assert recipe_hash(recipe) != recipe_hash(Recipe.model_validate(raw))


def test_recipes_without_the_later_fields_keep_their_hash(small_recipe, tmp_path):
    # The fixture recipe's hash before `negatives` and `tree_prefixes` existed: adding
    # fields must not rename, and so regenerate, the corpora already written.
    assert recipe_hash(small_recipe) == (
        "40602377c08404a6ec1a6f881cdbe8793111943d7a222392ea6057582ede6ba5"
    )
    negatives = Recipe.model_validate(_with_negatives(tmp_path))
    assert recipe_hash(negatives) != recipe_hash(small_recipe)


def test_tree_prefixes_keep_one_branch_of_mesh(shared_data):
    path = shared_data / "lexicons/chemicals_drugs_mesh2017_D.tsv"
    proteins = load_lexicon(
        [LexiconFile(path=path, tree_prefixes=["D12.776"])], LexiconFilters(), field="t"
    )
    everything = load_lexicon([LexiconFile(path=path)], LexiconFilters(), field="t")
    assert "Dystrophin" in proteins.terms and "Aspirin" in everything.terms
    assert "Aspirin" not in proteins.terms
    assert 1000 < len(proteins) < len(everything) / 2
    symbols = LexiconFile(path=path, tree_prefixes=["D12.776"], symbols_only=True)
    terms = load_lexicon([symbols], LexiconFilters(min_chars=2), field="t").terms
    assert {"BRCA1", "CTLA-4", "HMGB"} <= set(terms)  # 'BRCA1 Protein', ...; case kept
    assert not [t for t in terms if " " in t or t.islower()]


def test_an_unfiltered_file_keeps_generic_words(tmp_path):
    """A guideline's own short list ('tumor', 'cancer') passes the filters that drop such
    words from the big lexicons, and keeps its case (a gene symbol is not FDA upper case);
    the other files are still filtered and normalised."""
    guideline = tmp_path / "generic.txt"
    guideline.write_text("tumor\ncancer\nCDKN2A\n")
    big = tmp_path / "big.txt"
    big.write_text("pain\nbreast cancer\nACETAMINOPHEN\n")
    files = [LexiconFile(path=big), LexiconFile(path=guideline, unfiltered=True)]
    lexicon = load_lexicon(files, LexiconFilters(), field="t")
    assert lexicon.terms == ("breast cancer", "acetaminophen", "tumor", "cancer", "CDKN2A")
    generic = tmp_path / "generic_only.txt"
    generic.write_text("tumor\ncancer\n")
    with pytest.raises(ConfigError, match="no usable term left"):
        load_lexicon([LexiconFile(path=generic)], LexiconFilters(), field="t")


def test_lexicon_filters_and_weighting(shared_data):
    filters = LexiconFilters()
    assert not keep_term("Pain", filters)  # generic
    assert not keep_term("HIV", filters)  # too short
    assert not keep_term("Arthritis, Rheumatoid", filters)  # inverted heading
    assert not keep_term("((3-iodophenyl)methyl)guanidine", filters)  # formula
    assert not keep_term("acide acétylsalicylique", filters)  # non-English
    assert keep_term("breast cancer", filters)
    files = [LexiconFile(path=shared_data / "lexicons/diseases_mesh2017_C_F03.tsv")]
    lexicon = load_lexicon(files, filters, "short_terms", 2.0, field="t")
    assert "Rheumatoid Arthritis" in lexicon.terms  # the un-inverted column is used
    assert len({t.lower() for t in lexicon.terms}) == len(lexicon.terms)
    uniform = load_lexicon(files, filters, "uniform", 0.0, field="t")
    rng_a, rng_b = random.Random(0), random.Random(0)
    words_short = sum(len(lexicon.sample(rng_a, 1)[0].split()) for _ in range(2000))
    words_uniform = sum(len(uniform.sample(rng_b, 1)[0].split()) for _ in range(2000))
    assert words_short < 0.8 * words_uniform


def _config(tmp_path, recipe: dict) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "generate": {"recipe": recipe}}))
    return str(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(colour="red"), "generate.recipe.colour"),
        (
            lambda r: r["entity_types"][0].update(lexikon=[]),
            "generate.recipe.entity_types.0.lexikon",
        ),
        (
            lambda r: r["entity_types"][0]["lexicons"][0].update(path="/nowhere/d.txt"),
            "generate.recipe.entity_types.0.lexicons.0.path: no such lexicon file /nowhere/d.txt",
        ),
        (
            lambda r: r["entity_types"][1]["lexicons"][0].update(column="name"),
            "generate.recipe.entity_types.1.lexicons.0.column",
        ),
        (
            lambda r: r["entity_types"][0].update(per_note=[1, 9]),
            "generate.recipe.entity_types.0.per_note: asks for up to 9 terms",
        ),
        (
            lambda r: r["entity_types"][1]["lexicons"][0].update(tree_prefixes=["D12"]),
            "generate.recipe.entity_types.1.lexicons.0.tree_prefixes: ",
        ),
        (
            lambda r: r.update(negatives=[{"lexicons": [{"path": "/nowhere/p.txt"}]}]),
            "generate.recipe.negatives.0.lexicons.0.path: no such lexicon file /nowhere/p.txt",
        ),
        (
            lambda r: r.update(
                negatives=[{"lexicons": r["entity_types"][0]["lexicons"], "per_note": [0, 9]}]
            ),
            "generate.recipe.negatives.0.per_note: asks for up to 9 terms",
        ),
        (
            lambda r: r["filters"].update(min_chars=40),
            "generate.recipe.entity_types.0.lexicons: no usable term left in",
        ),
    ],
)
def test_bad_recipes_fail_at_load_time_naming_field_or_file(tmp_path, change, expected):
    recipe = recipe_dict(tmp_path, filters={})
    change(recipe)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, recipe))
    assert expected in str(err.value)
    assert not (tmp_path / "runs").exists()  # no work started


def test_recipe_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "recipe.yaml"
    bad.write_text(yaml.safe_dump(recipe_dict(tmp_path, num_notes=0)))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "g", "generate": {"recipe_file": "recipe.yaml"}}))
    with pytest.raises(ConfigError, match=f"{bad}: num_notes"):
        load_config(config)
    config.write_text(yaml.safe_dump({"name": "g", "generate": {"recipe_file": "none.yaml"}}))
    with pytest.raises(ConfigError, match="generate.recipe_file: no such recipe file"):
        load_config(config)


def test_example_configs_load(request):
    root = request.config.rootpath / "jobs" / "configs"
    for name in ("generate-clinical-notes.yaml", "generate-disease-sentences.yaml", "local.yaml"):
        config = load_config(root / name)
        assert config.generate is not None and config.generate.recipe.num_notes > 0
