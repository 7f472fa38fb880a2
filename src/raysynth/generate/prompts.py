"""Deterministic expansion of a recipe into prompt shards (the `prompts` table).

Prompt `index` is built from its own random generator, seeded by its note_id, so a prompt
does not depend on which shard, process or machine expands it, nor on how many notes the
recipe asks for: the same recipe and seed give the same prompts and note_ids everywhere, and
a larger `num_notes` extends a smaller run instead of replacing it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from raysynth.errors import ConfigError
from raysynth.generate.recipe import Recipe, load_examples, recipe_hash
from raysynth.schema import PROMPTS
from raysynth.shards import write_atomic

TEMPLATE_KEYS = ("system", "user", "completion", "seeds", "no_seeds")


@dataclass(frozen=True)
class Template:
    """A versioned prompt template file; `sha256` of its bytes goes into the recipe hash and
    into every note's generator record."""

    name: str
    parts: dict[str, str]
    sha256: str


@cache
def load_template(name: str) -> Template:
    path = resources.files("raysynth.generate") / "templates" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"generate.recipe.template: no template file {name}.yaml")
    data = path.read_bytes()
    parts = yaml.safe_load(data)
    missing = [k for k in TEMPLATE_KEYS if not isinstance(parts.get(k), str)]
    if missing:
        raise ConfigError(f"template {name}.yaml: missing part(s) {', '.join(missing)}")
    return Template(name, {k: parts[k] for k in TEMPLATE_KEYS}, hashlib.sha256(data).hexdigest())


def corpus_key(recipe: Recipe) -> str:
    """Recipe hash with the template's content mixed in: a changed template is a new corpus."""
    template = load_template(recipe.template)
    return hashlib.sha256(f"{recipe_hash(recipe)}:{template.sha256}".encode()).hexdigest()


def note_id(key: str, seed: int, index: int) -> str:
    return "n" + hashlib.sha256(f"{key}:{seed}:{index}".encode()).hexdigest()[:24]


def row_seed(nid: str) -> int:
    """A per-note sampling seed: reproducible sampling, and distinct requests (and cache
    entries) for notes whose prompts happen to be identical."""
    return int(nid[1:9], 16) & 0x7FFFFFFF


class Expander:
    """Builds prompt rows of one recipe; lexicons and template are loaded once."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.key = corpus_key(recipe)
        self.template = load_template(recipe.template)
        self.lexicons = recipe.lexicons("entity_types")
        self.negatives = recipe.lexicons("negatives")
        self.note_types = list(recipe.note_types)
        self.type_weights = list(recipe.note_types.values())
        self.examples = load_examples(recipe)

    def row(self, index: int) -> dict[str, Any]:
        recipe, parts = self.recipe, self.template.parts
        nid = note_id(self.key, recipe.seed, index)
        rng = random.Random(nid)
        note_type = rng.choices(self.note_types, weights=self.type_weights)[0]
        specialty = rng.choice(recipe.specialties) if recipe.specialties else None
        seeds = [] if rng.random() < recipe.no_seed_fraction else self._seeds(rng)
        fields = {
            "language": recipe.language,
            "note_type": note_type,
            "specialty_clause": f" in {specialty}" if specialty else "",
            "age": rng.randint(*recipe.patient.age),
            "sex": rng.choice(recipe.patient.sexes),
            "max_words": recipe.max_words,
            "mentions": ", ".join(self._mentions(rng, seeds)),  # after age, sex: same rng order
            "definitions": "; ".join(f"{t.label}: {t.definition}" for t in recipe.entity_types),
            # Drawn last, so recipes without examples keep the prompts they always had.
            "examples": "\n\n".join(self._examples(rng)),
        }
        # Negatives without seeds: the terms to contain, and the ban on naming an entity.
        instruction = [parts["seeds"]] if fields["mentions"] else []
        instruction += [] if seeds else [parts["no_seeds"]]
        fields["seed_instruction"] = " ".join(instruction).format(**fields)
        row: dict[str, Any] = {"note_id": nid, "messages": None, "prompt": None}
        if recipe.prompt_style == "chat":
            row["messages"] = [
                {"role": "system", "content": parts["system"].format(**fields)},
                {"role": "user", "content": parts["user"].format(**fields)},
            ]
        else:
            row["prompt"] = parts["completion"].format(**fields)
        row.update(
            seed_entities=seeds,
            note_type=note_type,
            specialty=specialty,
            language=recipe.language,
        )
        return row

    def _mentions(self, rng: random.Random, seeds: list[dict[str, str]]) -> list[str]:
        """What a seeded prompt asks the model to write: the seeds, and the recipe's unlabelled
        negative terms among them in random order (with `unseeded_negatives`, also without
        seeds)."""
        mentions = [s["text"] for s in seeds]
        if (seeds or self.recipe.unseeded_negatives) and self.negatives:
            for source, lexicon in zip(self.recipe.negatives, self.negatives, strict=True):
                mentions += lexicon.sample(rng, rng.randint(*source.per_note))
            rng.shuffle(mentions)
        return mentions

    def _examples(self, rng: random.Random) -> list[str]:
        if not self.examples:
            return []
        return rng.sample(self.examples, self.recipe.examples_per_prompt)

    def _seeds(self, rng: random.Random) -> list[dict[str, str]]:
        seeds = []
        for etype, lexicon in zip(self.recipe.entity_types, self.lexicons, strict=True):
            k = rng.randint(*etype.per_note)
            seeds += [{"text": t, "label": etype.label} for t in lexicon.sample(rng, k)]
        rng.shuffle(seeds)
        return seeds


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def write_prompt_shards(recipe: Recipe, out_dir: Path, shard_rows: int) -> list[Path]:
    """Expand the recipe into `ceil(num_notes / shard_rows)` Parquet shards of the prompts
    table, one shard in memory at a time; shards already on disk are kept (they are the same
    rows: expansion is deterministic). Returns every shard path, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    expander: Expander | None = None
    paths = []
    for shard, start in enumerate(range(0, recipe.num_notes, shard_rows)):
        path = out_dir / shard_name(shard)
        paths.append(path)
        if path.is_file():
            continue
        expander = expander or Expander(recipe)
        stop = min(start + shard_rows, recipe.num_notes)
        rows = [expander.row(i) for i in range(start, stop)]
        write_atomic(pa.Table.from_pylist(rows, schema=PROMPTS), path)
    return paths
