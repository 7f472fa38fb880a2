"""The generation recipe: what notes to ask for, typed and validated when the config loads.

Everything that decides the prompts is here (language, note types and their weights,
specialties, patient attributes, entity types with their lexicons, seeds per note, template,
sampling, number of notes, seed), so a recipe plus its seed names a corpus. `check_recipe`
loads every lexicon with its filters once, at load time, so a missing file, a lexicon the
filters empty, or a seed count larger than the lexicon fails before any work starts, with a
message naming the field and the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from raysynth.config_base import Strict, resolve_path
from raysynth.errors import ConfigError
from raysynth.llm.config import SamplingParams

if TYPE_CHECKING:
    from raysynth.generate.lexicon import Lexicon


SourceKind = Literal["entity_types", "negatives"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("entity_types", "negatives")


class LexiconFile(Strict):
    """One dictionary file feeding an entity type."""

    path: Path = Field(
        description="TSV with a header row, or one term per line (.txt); relative paths are "
        "resolved against the config file's folder."
    )
    column: str = Field(default="term", description="TSV column holding the term.")
    uninverted_column: str | None = Field(
        default="uninverted_term(heuristic)",
        description="TSV column with an un-inverted form of MeSH headings ('Arthritis, "
        "Rheumatoid' -> 'Rheumatoid Arthritis'), used instead of the term when not empty; "
        "null to ignore.",
    )
    term_types: list[str] | None = Field(
        default=None,
        description="Keep only TSV rows whose `term_type` column is one of these (e.g. "
        "[label, common_name, synonym_exact_2016]); null keeps every row.",
    )
    tree_prefixes: list[str] | None = Field(
        default=None,
        description="Keep only TSV rows with a `tree_numbers` entry (MeSH tree numbers, "
        "'|'-separated) starting with one of these, e.g. [D12.776] for MeSH's proteins; null "
        "keeps every row.",
    )
    symbols_only: bool = Field(
        default=False,
        description="Use only the gene- and protein-symbol-like words of each term (a capital "
        "and a digit, or three to six capitals: 'BRCA1 Protein' -> 'BRCA1'), e.g. for "
        "unlabelled negatives.",
    )
    # Left out of dumps while false, so that every digest and hash made before the field
    # existed (corpora, experiment cells) stays the same.
    unfiltered: bool = Field(
        default=False,
        exclude_if=lambda unfiltered: not unfiltered,
        description="Use every term of this file as written, past the filters: for a short "
        "hand-made list such as the generic words a guideline annotates on their own "
        "(NCBI-disease labels a bare 'cancer' or 'tumor').",
    )


class LexiconFilters(Strict):
    """Which dictionary entries are usable as seeds (FINDINGS.md: raw lexicons hold generic
    words, code-like names and non-English synonyms that make poor training mentions)."""

    min_chars: PositiveInt = Field(default=4, description="Shorter terms are dropped.")
    max_chars: PositiveInt = Field(default=50, description="Longer terms are dropped.")
    max_words: PositiveInt = Field(default=5, description="Terms with more words are dropped.")
    ascii_only: bool = Field(
        default=True,
        description="Drop terms with non-ASCII letters (mostly non-English INN synonyms); "
        "set false for recipes in other languages.",
    )
    drop_code_like: bool = Field(
        default=True,
        description="Drop code- and formula-like terms: brackets, semicolons, colons, "
        "commas, or more than a third of the characters digits.",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Extra generic terms to drop (case-insensitive), on top of the built-in "
        "list (pain, syndrome, disease, infection, therapy, ...).",
    )


class TermSource(Strict):
    """Lexicon files and how many of their terms one prompt asks the generator to write."""

    lexicons: list[LexiconFile] = Field(min_length=1, description="Files of example mentions.")
    per_note: tuple[int, int] = Field(
        default=(1, 2),
        description="Range [min, max] of this lexicon's terms seeded into one note.",
    )

    @model_validator(mode="after")
    def _range(self) -> TermSource:
        low, high = self.per_note
        if low < 0 or high < low:
            raise ValueError("per_note must be [min, max] with 0 <= min <= max")
        return self


class EntityType(TermSource):
    """An entity type the notes should mention, and where its seed mentions come from."""

    label: str = Field(description="Label written on seed spans, e.g. Disease or DRUG.")
    definition: str = Field(description="One line telling the generator what the type means.")


class NegativeTerms(TermSource):
    """Terms a seeded prompt also asks for that nobody labels. FINDINGS.md: a model trained on
    disease seeds in sentences without genes or proteins tags every gene, protein and genetics
    word of real abstracts as a disease; these put such names, unlabelled, beside the seeds."""

    per_note: tuple[int, int] = Field(
        default=(0, 1), description="Range [min, max] of negative terms in one seeded prompt."
    )


class Patient(Strict):
    """Patient attributes sampled into clinical-note prompts."""

    age: tuple[int, int] = Field(default=(18, 90), description="Age range [min, max], years.")
    sexes: list[str] = Field(
        default_factory=lambda: ["female", "male"], description="Sexes to sample from."
    )


class TermSampling(Strict):
    """Which lexicon entries are drawn and how: a recipe's seeds, and the terms annotation's
    mention replacement swaps in."""

    filters: LexiconFilters = Field(
        default_factory=LexiconFilters, description="Lexicon entry filters."
    )
    weighting: Literal["uniform", "short_terms"] = Field(
        default="short_terms",
        description="How terms are drawn: `uniform`, or `short_terms`: weight 1/words^power, "
        "favouring the short, common names over the long ontology tail (FINDINGS.md).",
    )
    weight_power: float = Field(default=2.0, ge=0.0, description="Power of `short_terms`.")


class Recipe(TermSampling):
    """What to generate; with `seed`, it fixes every prompt and note_id."""

    language: str = Field(default="English", description="Language the notes are written in.")
    note_types: dict[str, PositiveFloat] = Field(
        min_length=1,
        description="Note type -> sampling weight, e.g. {discharge summary: 2, progress note: 1}.",
    )
    specialties: list[str] = Field(
        default_factory=list, description="Specialties to sample from; empty: none named."
    )
    patient: Patient = Field(default_factory=Patient, description="Patient attributes.")
    entity_types: list[EntityType] = Field(min_length=1, description="Entity types to seed.")
    negatives: list[NegativeTerms] = Field(
        default_factory=list,
        description="Sources of unlabelled terms (e.g. proteins next to diseases) listed among "
        "a seeded prompt's mentions.",
    )
    no_seed_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of prompts with no seeded term (negative examples).",
    )
    # Left out of dumps while false, as `LexiconFile.unfiltered` is.
    unseeded_negatives: bool = Field(
        default=False,
        exclude_if=lambda unseeded: not unseeded,
        description="Also ask for the negatives' terms in the prompts with no seed, which "
        "must then contain them and name no entity: sentences about genes and mutations with "
        "nothing to label, the context where models trained without them tag genetics words "
        "of real abstracts.",
    )
    template: str = Field(
        default="note_v1",
        pattern=r"^[a-z0-9_]+$",
        description="Prompt template name: the file <name>.yaml in "
        "raysynth/generate/templates (parts system, user, completion, seeds, no_seeds).",
    )
    prompt_style: Literal["chat", "completion"] = Field(
        default="chat",
        description="`chat` sends messages (instruct models); `completion` sends a prompt "
        "to continue (base models).",
    )
    # Left out of dumps while unset, so the corpora generated before they existed keep their
    # hash.
    examples: Path | None = Field(
        default=None,
        exclude_if=lambda path: path is None,
        description="A file of example notes, one block per example, blank lines between "
        "blocks; `examples_per_prompt` of them, drawn per prompt, fill the template's "
        "{examples}. A base model (prompt_style: completion) follows examples, not "
        "instructions.",
    )
    examples_per_prompt: PositiveInt = Field(
        default=3,
        exclude_if=lambda k: k == 3,
        description="Examples drawn for each prompt (a fresh draw each prompt, so the model "
        "does not copy one example into every note).",
    )
    max_words: PositiveInt = Field(default=120, description="Target length given to the model.")
    min_chars: PositiveInt = Field(default=20, description="Shorter cleaned notes are removed.")
    max_chars: PositiveInt = Field(
        default=4000, description="Longer cleaned notes are cut at the last sentence end."
    )
    sampling: SamplingParams = Field(
        default_factory=lambda: SamplingParams(max_tokens=256, temperature=0.8, top_p=0.95),
        description="Sampling parameters of the generator.",
    )
    num_notes: PositiveInt = Field(description="Number of notes (prompts) to generate.")
    seed: int = Field(default=0, description="Random seed of the expansion.")

    def lexicons(self, kind: SourceKind, where: str = "generate.recipe") -> list[Lexicon]:
        """The filtered lexicon of each term source of `kind`, in order; errors name the
        field `<where>.<kind>.<i>` and the file."""
        from raysynth.generate.lexicon import load_lexicon

        return [
            load_lexicon(
                source.lexicons,
                self.filters,
                self.weighting,
                self.weight_power,
                field=f"{where}.{kind}.{i}.lexicons",
            )
            for i, source in enumerate(getattr(self, kind))
        ]

    def resolved(self, base: Path) -> Recipe:
        types = [_resolved(t, base) for t in self.entity_types]
        negatives = [_resolved(n, base) for n in self.negatives]
        examples = resolve_path(base, self.examples) if self.examples else None
        return self.model_copy(
            update={"entity_types": types, "negatives": negatives, "examples": examples}
        )


def _resolved(source: TermSource, base: Path) -> TermSource:
    files = [f.model_copy(update={"path": resolve_path(base, f.path)}) for f in source.lexicons]
    return source.model_copy(update={"lexicons": files})


def load_recipe(path: Path) -> Recipe:
    """A recipe file (YAML), validated, with its lexicon paths resolved against its folder."""
    from pydantic import ValidationError

    from raysynth.config_base import describe, read_yaml_mapping

    if not path.is_file():
        raise ConfigError(f"generate.recipe_file: no such recipe file {path}")
    raw = read_yaml_mapping(path, "recipe")
    try:
        return Recipe.model_validate(raw).resolved(path.parent)
    except ValidationError as err:
        raise ConfigError(f"{path}: {describe(err)}") from None


def load_examples(recipe: Recipe, where: str = "generate.recipe") -> list[str]:
    """The recipe's example notes (blocks separated by blank lines); none without a file."""
    if recipe.examples is None:
        return []
    if not recipe.examples.is_file():
        raise ConfigError(f"{where}.examples: no such file {recipe.examples}")
    lines = recipe.examples.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    if len(blocks) < recipe.examples_per_prompt:
        raise ConfigError(
            f"{where}.examples: {recipe.examples} holds {len(blocks)} example(s), fewer than "
            f"examples_per_prompt ({recipe.examples_per_prompt})"
        )
    return blocks


def _check_examples(recipe: Recipe, where: str) -> None:
    """A template that shows examples needs a file of them, and examples need such a template:
    otherwise they would be silently left out (or an empty list shown)."""
    from raysynth.generate.prompts import load_template

    template = load_template(recipe.template)
    shows = any("{examples}" in part for part in template.parts.values())
    if shows and recipe.examples is None:
        raise ConfigError(
            f"{where}.examples: template {recipe.template} shows examples; give a file of them"
        )
    if recipe.examples is not None and not shows:
        raise ConfigError(
            f"{where}.examples: template {recipe.template} shows none; use "
            "sentence_examples_v1 or a template with {examples}"
        )
    if recipe.examples is None and "examples_per_prompt" in recipe.model_fields_set:
        raise ConfigError(f"{where}.examples_per_prompt: needs `examples`")
    load_examples(recipe, where)


def check_recipe(recipe: Recipe, where: str = "generate.recipe") -> None:
    """Load every lexicon through its filters and check the seed counts fit: the errors a
    run would otherwise meet after its server started, raised now, naming field and file."""
    for kind in SOURCE_KINDS:
        lexicons = recipe.lexicons(kind, where)
        for i, (source, lexicon) in enumerate(zip(getattr(recipe, kind), lexicons, strict=True)):
            files = ", ".join(str(f.path) for f in source.lexicons)
            if source.per_note[1] > len(lexicon):
                raise ConfigError(
                    f"{where}.{kind}.{i}.per_note: asks for up to {source.per_note[1]} terms "
                    f"per note but {files} hold(s) only {len(lexicon)} after filtering"
                )
    _check_examples(recipe, where)
    if sum(t.per_note[1] for t in recipe.entity_types) == 0 and recipe.no_seed_fraction < 1:
        raise ConfigError(f"{where}.entity_types: every per_note range is [0, 0]")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Fields added after corpora existed: left out of the hash while unset, so that adding them
# did not rename (and so regenerate) every corpus generated before.
_LATER_FIELDS = frozenset({"negatives", "tree_prefixes", "symbols_only"})


def _without_later_defaults(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: _without_later_defaults(v)
            for k, v in data.items()
            if not (k in _LATER_FIELDS and v in (None, False, []))
        }
    if isinstance(data, list):
        return [_without_later_defaults(v) for v in data]
    return data


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of what decides the prompts, independent of the machine: lexicon files count
    by content, not path; `num_notes` is left out so a larger run extends a smaller one with
    the same note_ids; `seed` is mixed in separately by the note_id."""
    data = _without_later_defaults(recipe.model_dump(mode="json", exclude={"num_notes", "seed"}))
    for kind in SOURCE_KINDS:  # an unset `negatives` is not in `data`
        for source, raw in zip(getattr(recipe, kind), data.get(kind, []), strict=True):
            for lex, raw_lex in zip(source.lexicons, raw["lexicons"], strict=True):
                raw_lex["path"] = file_digest(lex.path) if lex.path.is_file() else str(lex.path)
    if recipe.examples is not None and recipe.examples.is_file():
        data["examples"] = file_digest(recipe.examples)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
