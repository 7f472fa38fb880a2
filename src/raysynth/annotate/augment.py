"""Mention replacement: more training notes from the contexts of the annotated ones.

FINDINGS.md measured why a naive synthetic corpus teaches little: a small generator writes a
few sentence shapes around exotic seeds, doubling the notes adds about 0.03 F1, and
abbreviations (a quarter of NCBI-disease's gold mentions) almost never appear. Replacing every
labelled mention of an ok note by another lexicon term of its label gives new notes in the same
contexts with other surface forms, and each replaced span is right by construction (a lexicon
entry of that label), whatever the annotator got wrong about the original span. A fraction of
the replacements define an abbreviation, `term (ABBR)` with both labelled, and another
fraction use one alone, in the contexts where a disease name stood. Two more forms follow a
target guideline that labels qualifiers and coordinations whole: a qualifier in front
('hereditary breast cancer') and two terms of one last word ('breast and ovarian cancer').
A last one writes a gene product's deficiency ('G6PD deficiency', 'deficiency of
galactokinase'), a disease to NCBI-disease's guideline that no lexicon lists for every
product, and one the recipe's gene-symbol negatives otherwise teach to leave out.

Written by hand: replacement on character offsets with the labels carried along is a few lines
here, and the NER augmentation libraries work on whole-word BIO sequences of their own format.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from raysynth.annotate.config import REPLACEMENT_FORMS, AugmentConfig, KnowledgeBase
from raysynth.documents import Entity
from raysynth.evaluate.abbreviations import find_abbreviations
from raysynth.schema import STATUS_OK

COPY_SEPARATOR = "~r"  # note_id of the k-th copy of note X: X~r<k>
SOURCE = "replaced"
CONJUNCTIONS = ("and", "or", "/")
_WORD_PARTS = re.compile(r"[A-Za-z]+")
_COORDINABLE = re.compile(r"[A-Za-z'-]+( [A-Za-z'-]+)?(?<! of) [A-Za-z]{4,}")


def abbreviation(term: str) -> str | None:
    """The initials of a term of two to six words or hyphen parts ('Huntington disease' ->
    'HD', 'ataxia-telangiectasia' -> 'AT'); None for a single word, which has no initials
    worth writing."""
    parts = _WORD_PARTS.findall(term)
    if not 2 <= len(parts) <= 6:
        return None
    return "".join(p[0] for p in parts).upper()


def surface(
    term: str,
    rng: random.Random,
    config: AugmentConfig,
    partner: Callable[[str], str | None],
    product: Callable[[], str | None] = lambda: None,
) -> list[tuple[str, bool]]:
    """The text written for one replacement, as pieces (text, labelled): the term, the term
    and its abbreviation in brackets, the abbreviation alone, the term behind a qualifier,
    the term coordinated with `partner(term)` (another of its last word), or the deficiency
    of `product()` in place of the term. A form the term cannot take (no abbreviation, no
    partner, no product) falls back to the term."""
    short = abbreviation(term)
    form = _form(rng.random(), config)
    if form == "define_abbreviation" and short:
        return [(term, True), (" (", False), (short, True), (")", False)]
    if form == "abbreviation_only" and short:
        return [(short, True)]
    if form == "modifier":
        return [(f"{rng.choice(config.modifiers)} {term}", True)]
    name = product() if form == "deficiency" else None
    if name:
        return [(f"{name} deficiency" if rng.random() < 0.5 else f"deficiency of {name}", True)]
    other = partner(term) if form == "coordinate" and " " in term else None
    if other:
        return [(f"{term.rsplit(' ', 1)[0]} {rng.choice(CONJUNCTIONS)} {other}", True)]
    return [(term, True)]


def _form(draw: float, config: AugmentConfig) -> str | None:
    """The form a uniform draw falls in, each taking its configured fraction of [0, 1)."""
    for name in REPLACEMENT_FORMS:
        draw -= getattr(config, name)
        if draw < 0:
            return name
    return None


def replace_mentions(
    text: str,
    entities: Sequence[Entity],
    draw: Callable[[str], str],
    rng: random.Random,
    config: AugmentConfig,
    partner: Callable[[str, str], str | None] = lambda label, term: None,
    product: Callable[[], str | None] = lambda: None,
) -> tuple[str, list[Entity]]:
    """`text` with each entity (non-overlapping, as merging leaves them) replaced by
    `draw(label)` in one of the `surface` forms (coordinated with `partner(label, term)`,
    or a deficiency of `product()`),
    and the new entities on the new offsets. A replacement at the start of a sentence gets a
    capital letter, as the text it replaced had. A labelled long form the text defines an
    abbreviation for, 'Huntington disease (HD)', is replaced by the term alone, and its short
    form, wherever it is labelled after that, by the new term's initials ('Crohn disease
    (CD)'), or stays as it was when the new term has none."""
    defined = {a.long_end: a.short for a in find_abbreviations(text)}
    shorts: dict[str, str] = {}  # a replaced long form's short form -> what the copy writes
    pieces: list[str] = []
    out: list[Entity] = []
    position = length = 0
    for entity in sorted(entities, key=lambda e: e.start):
        pieces.append(text[position : entity.start])
        length += entity.start - position
        if entity.text in shorts:
            written = [(shorts[entity.text], True)]
        elif entity.end in defined:
            term, short = draw(entity.label), defined[entity.end]
            shorts[short] = abbreviation(term) or short
            written = [(term, True)]
        else:
            written = surface(
                draw(entity.label), rng, config, partial(partner, entity.label), product
            )
        for i, (piece, labelled) in enumerate(written):
            if i == 0 and _sentence_start(text, entity.start):
                piece = piece[:1].upper() + piece[1:]
            if labelled:
                out.append(Entity(length, length + len(piece), entity.label, piece, SOURCE))
            pieces.append(piece)
            length += len(piece)
        position = entity.end
    pieces.append(text[position:])
    return "".join(pieces), out


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?\n"


class Augmenter:
    """Copies of ok notes with their mentions replaced; lexicons loaded once (per actor)."""

    def __init__(self, config: AugmentConfig, kb: KnowledgeBase | None, seed: int) -> None:
        from raysynth.generate.lexicon import load_lexicon, load_terms

        lexicons = config.lexicons or (kb.lexicons if kb is not None else {})
        where = "augment.lexicons" if config.lexicons else "kb.lexicons"
        self.config = config
        self.seed = seed
        weighting = (config.weighting, config.weight_power)
        self.lexicons = {
            label: load_lexicon(files, config.filters, *weighting, field=f"{where}.{label}")
            for label, files in lexicons.items()
        }
        self.by_last_word = {
            label: _by_last_word(lex.terms) for label, lex in self.lexicons.items()
        }
        products = []
        if config.products:
            products = load_terms(config.products, None, field="augment.products")
        self.products = [_product_name(t) for t in products if not _plural(t)]

    def __call__(self, notes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The copies of `notes` (annotation rows); notes not ok, without entities or with
        an entity of a label no lexicon covers are not copied."""
        copies = []
        for note in notes:
            entities = [Entity.from_row(e) for e in note["entities"]]
            usable = note["status"] == STATUS_OK and entities
            if not usable or any(e.label not in self.lexicons for e in entities):
                continue
            for k in range(1, self.config.copies + 1):
                copies.append(self._copy(note, entities, k))
        return copies

    def _copy(self, note: dict[str, Any], entities: list[Entity], k: int) -> dict[str, Any]:
        note_id = f"{note['note_id']}{COPY_SEPARATOR}{k}"
        digest = hashlib.sha256(f"{self.seed}:{note_id}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))

        def draw(label: str) -> str:
            return self.lexicons[label].sample(rng, 1)[0]

        def partner(label: str, term: str) -> str | None:
            if not _COORDINABLE.fullmatch(term):
                return None
            others = [t for t in self.by_last_word[label].get(_last_word(term), ()) if t != term]
            return rng.choice(others) if others else None

        def product() -> str | None:
            return rng.choice(self.products) if self.products else None

        text, replaced = replace_mentions(
            note["text"], entities, draw, rng, self.config, partner, product
        )
        rows = [e.to_row() for e in replaced]
        return {**note, "note_id": note_id, "text": text, "entities": rows, "reason": None}


def _last_word(term: str) -> str:
    return term.rsplit(" ", 1)[-1].lower()


def _by_last_word(terms: Sequence[str]) -> dict[str, list[str]]:
    """The terms a coordination can join, by their last word: two or three words ending in a
    word of four letters or more. Longer and numbered names make nonsense shared last words
    ('... dyshormonogenesis 2A', 'Atherosclerosis of renal artery')."""
    index: dict[str, list[str]] = {}
    for term in terms:
        if _COORDINABLE.fullmatch(term):
            index.setdefault(_last_word(term), []).append(term)
    return index


def _plural(name: str) -> bool:
    """A class of products ('Carboxypeptidases', 'Notch Receptors', 'CDKs'), whose
    deficiency reads wrong."""
    return name.endswith("s")


def _product_name(name: str) -> str:
    """MeSH's capitalised heading words in lower case, as running text writes them
    ('Glutathione Reductase' -> 'glutathione reductase'); symbols and short parts as they
    are ('Complement C2a', 'Factor Xa' keep 'C2a' and 'Xa')."""
    return " ".join(_running_text(w) for w in name.split())


def _running_text(word: str) -> str:
    capitalised = len(word) > 2 and word[0].isupper() and word[1].islower()
    return word.lower() if capitalised and word[1:].islower() else word
