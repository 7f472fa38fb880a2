"""Abbreviations defined in a document take their long form's label wherever they occur.

Biomedical and clinical text defines an abbreviation once, 'myotonic dystrophy (DM)', then
uses it alone: NCBI-disease's dev set has 19 mentions of DM, 17 of VHL, 13 of HD. A model that
reads one window at a time cannot know that DM is a disease three sentences later, but the
document says so. This is the abbreviation step of biomedical taggers (BANNER, TaggerOne),
applied to any predictions (model, dictionary, LLM): where the long form is predicted as an
entity, every occurrence of the short form gets its label; where the long form holds no
prediction at all, predictions of exactly the short form are dropped (a gene's 'ATM').

The pairs are found with Schwartz & Hearst's algorithm (PSB 2003). Written here because the
one PyPI implementation (`abbreviations`) returns strings without offsets, raises on a
sentence with unbalanced parentheses, and configures the root logger when imported.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from raysynth.documents import Document, Entity

_PARENTHESIS = re.compile(r"\(\s*([^()]{1,12}?)\s*\)")
_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s")
# A long form does not reach back over the end of a sentence or another parenthesis.
_BARRIER = re.compile(r"[.;:!?]\s|[()\[\]]")
# Share of the long form's characters a prediction must cover for its label to carry.
MIN_COVER = 0.5


@dataclass(frozen=True)
class Abbreviation:
    short: str
    long_start: int
    long_end: int


def _is_short_form(candidate: str) -> bool:
    return (
        2 <= len(candidate) <= 10
        and len(candidate.split()) <= 2
        and candidate[0].isalnum()
        and any(c.isalpha() for c in candidate)
    )


def _long_form_start(short: str, window: str) -> int | None:
    """Where the long form starts in `window` (the words before the parenthesis): each
    letter or digit of the short form, right to left, is matched in the window, the first one
    at the start of a word (Schwartz & Hearst's findBestLongForm)."""
    s, w = len(short) - 1, len(window) - 1
    while s >= 0:
        char = short[s].lower()
        if not char.isalnum():
            s -= 1
            continue
        while w >= 0 and (
            window[w].lower() != char or (s == 0 and w > 0 and window[w - 1].isalnum())
        ):
            w -= 1
        if w < 0:
            return None
        w -= 1
        s -= 1
    return max((m.end() for m in _SPACE.finditer(window, 0, w + 1)), default=0)


def _initials_start(short: str, window: str) -> int | None:
    """Where the long form starts if the short form's letters are the initials of the last
    words in another order: 'Myotonic dystrophy (DM)', from the Latin 'dystrophia myotonica'.
    Schwartz & Hearst miss these; NCBI-disease's dev set uses DM 19 times."""
    letters = [c.lower() for c in short if c.isalpha()]
    if len(letters) < 2 or not short.replace("-", "").isalnum():
        return None  # not '(P<0.05)' after 'patients'
    words = list(_WORD.finditer(window))[-len(letters) :]
    if len(words) == len(letters) and sorted(w.group()[0].lower() for w in words) == sorted(
        letters
    ):
        return words[0].start()
    return None


def find_abbreviations(text: str) -> Iterator[Abbreviation]:
    """'long form (SF)' pairs of a text, with the long form's character offsets."""
    barriers = [b.end() for b in _BARRIER.finditer(text)]
    for match in _PARENTHESIS.finditer(text):
        short = match.group(1)
        if not _is_short_form(short):
            continue
        head_end = match.start()
        while head_end and text[head_end - 1].isspace():
            head_end -= 1
        before = bisect.bisect_right(barriers, head_end) - 1
        words = list(_WORD.finditer(text, barriers[before] if before >= 0 else 0, head_end))
        words = words[-min(len(short) + 5, 2 * len(short)) :]
        if not words:
            continue
        offset = words[0].start()
        start = _long_form_start(short, text[offset:head_end])
        if start is None:
            start = _initials_start(short, text[offset:head_end])
        if start is not None and head_end - (offset + start) > len(short):
            yield Abbreviation(short, offset + start, head_end)


def _occurrences(text: str, short: str) -> list[tuple[int, int]]:
    pattern = re.compile(rf"(?<![\w-]){re.escape(short)}(?![\w-])")
    return [m.span() for m in pattern.finditer(text)]


def _long_form_label(abbreviation: Abbreviation, entities: Sequence[Entity]) -> str | None:
    """The label of the predictions covering most of the long form, if they cover at least
    MIN_COVER of it; '' when no prediction touches it at all."""
    start, end = abbreviation.long_start, abbreviation.long_end
    cover: Counter[str] = Counter()
    for e in entities:
        cover[e.label] += max(0, min(end, e.end) - max(start, e.start))
    if not +cover:
        return ""
    label, chars = cover.most_common(1)[0]
    return label if chars >= MIN_COVER * (end - start) else None


def propagate_abbreviations(text: str, entities: Sequence[Entity]) -> list[Entity]:
    """`entities` with each defined abbreviation labelled as its long form is (see above).
    An occurrence that already holds a prediction keeps it. A short form defined twice
    ('HD' for a disease and for 'high density') is labelled if any of its long forms is, and
    loses its predictions only if none of its long forms holds any."""
    definitions: dict[str, list[Abbreviation]] = defaultdict(list)
    for abbreviation in find_abbreviations(text):
        definitions[abbreviation.short].append(abbreviation)
    result = list(entities)
    for short, defined in definitions.items():
        labels = [_long_form_label(a, result) for a in defined]
        spans = _occurrences(text, short)
        label = next((lab for lab in labels if lab), None)
        if label:
            free = [s for s in spans if not any(e.start < s[1] and s[0] < e.end for e in result)]
            result += [Entity(s, e, label, text[s:e], source="abbreviation") for s, e in free]
        elif all(lab == "" for lab in labels):
            result = [e for e in result if (e.start, e.end) not in spans]
    return sorted(result, key=lambda e: (e.start, e.end))


def label_abbreviations(text: str, entities: Sequence[Entity]) -> list[Entity]:
    """`entities` plus the occurrences of each short form whose long form is labelled: the
    step for training labels, which only adds. Unlike a prediction, a label on a short form
    whose long form holds none (a seed 'AVSD' after an unlabelled 'atrioventricular septal
    defect (AVSD)') is kept: the long form is more likely a term the lexicons lack."""
    added = [e for e in propagate_abbreviations(text, entities) if e.source == "abbreviation"]
    return sorted([*entities, *added], key=lambda e: (e.start, e.end))


def propagate_in_documents(
    docs: Sequence[Document], predictions: Sequence[Sequence[Entity]]
) -> list[list[Entity]]:
    """Each document's predictions after the step: the baselines scored on entities."""
    return [propagate_abbreviations(d.text, p) for d, p in zip(docs, predictions, strict=True)]


def propagate_abbreviation_tags(
    text: str, tags: Sequence[str], token_spans: Sequence[tuple[int, int]]
) -> list[str]:
    """The same on a tag sequence: only the short forms' tokens change, so the rest of the
    tags (an I- without its B-, which strict scoring drops) stay as predicted."""
    from raysynth.alignment import entities_to_tags, tags_to_entities

    before, _ = tags_to_entities(tags, token_spans, text)
    after = propagate_abbreviations(text, before)
    if after == before:
        return list(tags)
    new_tags, _ = entities_to_tags(after, token_spans)
    result = list(tags)
    for entity in [e for e in before if e not in after] + [e for e in after if e not in before]:
        covered = [i for i, (s, e) in enumerate(token_spans) if entity.start < e and s < entity.end]
        follows = covered[-1] + 1 if covered else len(tags)
        if entity.source == "abbreviation" and follows < len(tags) and tags[follows][:2] == "I-":
            continue  # a B- here would join the stray I- after it into one longer entity
        for i in covered:
            result[i] = new_tags[i]
    return result
