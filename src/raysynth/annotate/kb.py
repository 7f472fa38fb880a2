"""Dictionary (knowledge-base) matching: `kb` spans for label merging, and the candidate
strings that dictionary-infused prompts list (Monajatipoor et al. 2024).

Matching is greedy longest-match over word tokens, left to right, case-insensitive, never
overlapping. Words come from `raysynth.alignment.default_tokenize`, the tokenization notes
are tagged with, so a match always starts and ends on a word boundary ("HD" never matches
inside "HDL") and its span covers whole words of the model's tokenization.

Hand-written: no package in pyproject.toml's dependencies does phrase matching over ~100k
terms with these spelling variants. A term is indexed as its normalised words joined by
spaces (one string per key is smaller than a tuple of strings at 100k terms), with every
proper prefix in a set, so scanning a note costs a few set look-ups per word and no regular
expression per term.

Variants (on by default; FINDINGS.md: F1 0.46 with them, 0.42 without on NCBI-disease dev):
- hyphen vs space: hyphens are dropped from the words, so "non-Hodgkin", "non Hodgkin" and
  "non - Hodgkin" (CoNLL text) are the same key;
- possessive: an apostrophe and an "s" right after it are dropped ("Alzheimer's disease" =
  "Alzheimer disease"), and a capitalised (eponym) word before the last one is also indexed
  with an "s" ("Alzheimers disease");
- grammatical number of the last word: s / es / ies<->y, both ways ("polyps", "allergies").
  All-caps words are abbreviations and get no number variant ("AIDS" must not match "aid").
An exact key always wins over another term's variant; a key in two labels goes to the label
given first, and the clash is counted in `label_conflicts`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from raysynth.alignment import default_tokenize
from raysynth.documents import Document, Entity
from raysynth.generate.lexicon import load_terms
from raysynth.generate.recipe import LexiconFile, LexiconFilters
from raysynth.scoring import Scores, score_documents

SOURCE = "kb"
_HYPHENS = frozenset("-\u2010\u2011")
_APOSTROPHES = frozenset("'\u2019")
_VOWELS = frozenset("aeiou")

# A word of a text: (normalised form, start, end) in characters.
_Word = tuple[str, int, int]


def _words(text: str, fold_variants: bool) -> list[_Word]:
    """The lower-cased words of `text` with their spans; with `fold_variants`, hyphens,
    apostrophes and a possessive "s" are left out, which makes those spellings one key."""
    words: list[_Word] = []
    after_apostrophe = False
    for start, end in default_tokenize(text):
        word = text[start:end].lower()
        if fold_variants:
            possessive_s = after_apostrophe and word == "s"
            after_apostrophe = word in _APOSTROPHES
            if after_apostrophe or possessive_s or word in _HYPHENS:
                continue
        words.append((word, start, end))
    return words


def _number_variants(word: str) -> list[str]:
    """The other grammatical number of an English noun, by suffix rules only: irregular
    plurals are rare in disease and drug names, and a wrong form is a key no text has."""
    if word.endswith("ies"):
        return [word[:-3] + "y"]
    if word.endswith("es"):
        return [word[:-2], word[:-1]]
    if word.endswith("s") and not word.endswith("ss"):
        return [word[:-1]]
    if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
        return [word[:-1] + "ies"]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return [word + "es"]
    return [word + "s"]


def _is_eponym(original: str) -> bool:
    return len(original) > 1 and original[0].isupper() and original[1:].islower()


def _variant_keys(term: str, words: list[_Word]) -> Iterator[list[str]]:
    """Word lists of the number and possessive variants of one term (see the module doc)."""
    forms = [w for w, _, _ in words]
    last, start, end = words[-1]
    original = term[start:end]
    if len(last) >= 3 and original.isalpha() and not original.isupper():
        for variant in _number_variants(last):
            yield [*forms[:-1], variant]
    for i, (word, start, end) in enumerate(words[:-1]):
        if _is_eponym(term[start:end]) and not word.endswith("s"):
            yield [*forms[:i], word + "s", *forms[i + 1 :]]


class DictionaryMatcher:
    """Greedy longest-match of labelled terms (see the module doc for the rules)."""

    def __init__(self, terms: Mapping[str, Iterable[str]], variants: bool = True) -> None:
        self.variants = variants
        self.labels = tuple(terms)
        self.label_conflicts = 0
        self._entries: dict[str, str] = {}  # key -> label
        self._prefixes: set[str] = set()
        pending: list[tuple[str, str]] = []  # variant keys, added once every exact key is in
        for label, label_terms in terms.items():
            for term in label_terms:
                words = _words(term, variants)
                if not words:
                    continue
                self._add(" ".join(w for w, _, _ in words), label)
                if variants:
                    pending += [(" ".join(v), label) for v in _variant_keys(term, words)]
        for key, label in pending:
            if key not in self._entries:
                self._add(key, label)

    def __len__(self) -> int:
        """Number of keys, variants included."""
        return len(self._entries)

    def _add(self, key: str, label: str) -> None:
        known = self._entries.get(key)
        if known is not None:
            self.label_conflicts += known != label
            return
        self._entries[key] = label
        parts = key.split(" ")
        self._prefixes.update(" ".join(parts[:n]) for n in range(1, len(parts)))

    @classmethod
    def from_lexicons(
        cls,
        per_label: Mapping[str, Sequence[LexiconFile]],
        filters: LexiconFilters | None,
        variants: bool = True,
    ) -> DictionaryMatcher:
        """Terms read and filtered exactly as generation reads its seeds (`load_terms`), so
        the dictionary that labels notes is the one their seeds came from. `filters` None
        keeps every entry, generic words included."""
        terms = {
            label: load_terms(files, filters, field=f"kb.lexicons.{label}")
            for label, files in per_label.items()
        }
        return cls(terms, variants)

    def _longest_at(self, words: list[_Word], i: int) -> tuple[int, str] | None:
        """(index of the last word, label) of the longest key starting at word i."""
        best = None
        key = ""
        for j in range(i, len(words)):
            key = f"{key} {words[j][0]}" if key else words[j][0]
            label = self._entries.get(key)
            if label is not None:
                best = (j, label)
            if key not in self._prefixes:
                break
        return best

    def match(self, text: str) -> list[Entity]:
        """Non-overlapping `kb` entities of `text`, left to right, the longest at each word."""
        words = _words(text, self.variants)
        entities = []
        i = 0
        while i < len(words):
            found = self._longest_at(words, i)
            if found is None:
                i += 1
                continue
            last, label = found
            start, end = words[i][1], words[last][2]
            entities.append(Entity(start, end, label, text=text[start:end], source=SOURCE))
            i = last + 1
        return entities

    def candidates(self, text: str) -> list[tuple[str, str]]:
        """The dictionary hints of a prompt for `text` (see `hints`)."""
        return hints(self.match(text))


def hints(matches: Sequence[Entity]) -> list[tuple[str, str]]:
    """(surface string as first written, label) of each match, in order of appearance, each
    once whatever its case: what a prompt lists as dictionary terms found in the note."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for entity in matches:
        seen.setdefault((entity.text.lower(), entity.label), (entity.text, entity.label))
    return list(seen.values())


@dataclass(frozen=True)
class BaselineResult:
    """Scores of the dictionary on gold documents, and the time matching took."""

    scores: Scores
    match_seconds: float


def dictionary_baseline(
    docs: Sequence[Document], matcher: DictionaryMatcher, abbreviations: bool = False
) -> BaselineResult:
    """Score the matcher as the evaluate stage scores a model (`scoring.score_documents`),
    with the same abbreviation step when asked (`EvaluateConfig.abbreviations`)."""
    from raysynth.evaluate.abbreviations import propagate_in_documents

    started = time.perf_counter()
    pred = [matcher.match(doc.text) for doc in docs]
    match_seconds = time.perf_counter() - started
    if abbreviations:
        pred = propagate_in_documents(docs, pred)
    scores = score_documents(docs, pred, matcher.labels)
    return BaselineResult(scores=scores, match_seconds=match_seconds)
