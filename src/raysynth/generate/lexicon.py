"""Lexicons: dictionary files read once, filtered, de-duplicated, and sampled per entity type.

The shared lexicons are dictionaries, not annotations (lexicons/README.md): they hold generic
words ('Pain', 'Syndrome'), formula- and code-like names, non-English INN synonyms and
inverted MeSH headings. Each filter drops a class of entry that makes a poor seed; what is
left is de-duplicated case-insensitively, keeping the first spelling met.

Sampling weights: FINDINGS.md measured that seeds drawn uniformly from an ontology are mostly
rare, exotic terms, so the fine-tuned model learned "unusual technical word = disease" and
missed common diseases. Without term frequencies from real text (which would leak the test
domain), name length is the proxy used here: common conditions and drugs have short names
('asthma', 'breast cancer', 'aspirin') and the ontology's long tail is made of long,
qualified names ('autosomal recessive limb-girdle muscular dystrophy type 2F'). `short_terms`
weights a term 1/words^power. This is a heuristic, not a measured optimum.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raysynth.errors import ConfigError

if TYPE_CHECKING:
    from raysynth.generate.recipe import LexiconFile

# Words that are entries in the lexicons but are not useful mentions on their own.
_GENERIC_WORDS = """pain syndrome syndromes disease diseases disorder disorders infection
infections injury injuries therapy therapies drug drugs treatment surgery procedure procedures
diagnosis symptom symptoms sign signs fever cancer tumor tumour neoplasm neoplasms lesion lesions
abnormality abnormalities condition conditions death water oxygen sodium vitamin vitamins hormone
hormones protein proteins enzyme enzymes placebo weight body head fatigue weakness"""
GENERIC = frozenset(_GENERIC_WORDS.split())  # noqa: SIM905 (a word list reads better as text)
_CODE_LIKE = re.compile(r"[\[\](){};:,=<>/\\|_]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# A gene or protein symbol: a capital and a digit ('BRCA1', 'CTLA-4', 'Smad6'), or three to
# six capitals ('HMGB'); at most ten characters.
_SYMBOL = re.compile(
    r"(?=.{2,10}$)(?:(?=.*[A-Z])(?=.*\d)[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]|[A-Z]{3,6})"
)


@dataclass(frozen=True)
class Lexicon:
    """The usable terms of one entity type and their cumulative sampling weights."""

    terms: tuple[str, ...]
    cum_weights: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.terms)

    def sample(self, rng: random.Random, k: int) -> list[str]:
        """k distinct terms, drawn by weight without replacement (rejection of repeats: k is
        tiny next to the lexicon, which `check_recipe` guarantees is at least k)."""
        chosen: list[str] = []
        total = self.cum_weights[-1]
        while len(chosen) < k:
            term = self.terms[bisect.bisect_right(self.cum_weights, rng.random() * total)]
            if term not in chosen:
                chosen.append(term)
        return chosen


def read_terms(spec: LexiconFile) -> list[str]:
    """Raw terms of one LexiconFile: a TSV's `column` (or its un-inverted form) on the rows
    its `term_types` and `tree_prefixes` keep, or every line of a text file; with
    `symbols_only`, the symbol-like words of those terms."""
    terms = _file_terms(spec)
    if spec.symbols_only:
        return [w for term in terms for w in term.split() if _SYMBOL.fullmatch(w)]
    return terms


def _file_terms(spec: LexiconFile) -> list[str]:
    path = spec.path
    if not path.is_file():
        raise FileNotFoundError(path)
    if path.suffix.lower() != ".tsv":
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        needed = [spec.column] + (["tree_numbers"] if spec.tree_prefixes else [])
        for column in needed:
            if column not in (reader.fieldnames or []):
                raise KeyError(column)
        return [_term(row, spec) for row in reader if _kept(row, spec)]


def _kept(row: dict[str, str], spec: LexiconFile) -> bool:
    if spec.term_types is not None and row.get("term_type") not in spec.term_types:
        return False
    if spec.tree_prefixes:
        trees = (row["tree_numbers"] or "").split("|")
        return any(t.startswith(p) for t in trees for p in spec.tree_prefixes)
    return True


def _term(row: dict[str, str], spec: LexiconFile) -> str:
    uninverted = spec.uninverted_column
    term = (row.get(uninverted) or "").strip() if uninverted else ""
    return term or (row[spec.column] or "").strip()


def keep_term(term: str, filters) -> bool:
    """Whether one term passes the recipe's filters."""
    if not filters.min_chars <= len(term) <= filters.max_chars:
        return False
    if len(term.split()) > filters.max_words:
        return False
    if filters.ascii_only and _NON_ASCII.search(term):
        return False
    code_like = _CODE_LIKE.search(term) or sum(c.isdigit() for c in term) * 3 > len(term)
    if filters.drop_code_like and code_like:
        return False
    lowered = term.lower()
    return lowered not in GENERIC and lowered not in {e.lower() for e in filters.exclude}


def normalise(term: str) -> str:
    """FDA data is upper case: an all-caps term longer than an abbreviation is lower-cased
    so it reads like prose ('ASPIRIN' -> 'aspirin'); 'AIDS' stays."""
    return term.lower() if term.isupper() and len(term) > 5 else term


def weights(terms: Sequence[str], weighting: str, power: float) -> tuple[float, ...]:
    if weighting == "uniform":
        values = [1.0] * len(terms)
    else:
        values = [1.0 / len(t.split()) ** power for t in terms]
    return tuple(itertools.accumulate(values))


_CACHE: dict[str, Lexicon] = {}


def load_lexicon(files, filters, weighting: str = "uniform", power: float = 0.0, *, field: str):
    """The filtered, de-duplicated Lexicon of one entity type, read once per process (config
    checking and prompt expansion ask for the same one). Errors name `field` and the file."""
    key = json.dumps(
        [[f.model_dump(mode="json") for f in files], filters.model_dump(mode="json"), weighting,
         power],
        sort_keys=True,
    )  # fmt: skip
    if key not in _CACHE:
        _CACHE[key] = _load(files, filters, weighting, power, field)
    return _CACHE[key]


def _load(files, filters, weighting: str, power: float, field: str) -> Lexicon:
    terms = load_terms(files, filters, field=field)
    return Lexicon(tuple(terms), weights(terms, weighting, power))


def load_terms(files, filters, *, field: str) -> list[str]:
    """The filtered, de-duplicated terms of one entity type, in file order: the one reading
    path for generation's seeds and annotation's dictionary, so both see the same terms.
    `filters` None keeps every term. Errors name `field`, the list of `files` in the config
    (`kb.lexicons.Disease`), and the file."""
    seen: set[str] = set()
    terms: list[str] = []
    for i, spec in enumerate(files):
        where = f"{field}.{i}"
        try:
            raw = read_terms(spec)
        except FileNotFoundError:
            raise ConfigError(f"{where}.path: no such lexicon file {spec.path}") from None
        except KeyError as missing:
            field_name = "column" if missing.args[0] == spec.column else "tree_prefixes"
            message = f"{where}.{field_name}: {spec.path} has no column {missing.args[0]!r}"
            raise ConfigError(message) from None
        for term in raw:
            # 'As written': a hand-made list's 'CDKN2A' must not become FDA-style 'cdkn2a'.
            term = term if spec.symbols_only or spec.unfiltered else normalise(term)
            usable = filters is None or spec.unfiltered or keep_term(term, filters)
            if usable and term.lower() not in seen:
                seen.add(term.lower())
                terms.append(term)
    if not terms:
        names = ", ".join(str(f.path) for f in files)
        raise ConfigError(f"{field}: no usable term left in {names} after filtering")
    return terms
