"""Character spans <-> tokens <-> BIO tags <-> Hugging Face subwords, in one place.

Annotation produces character-offset entities, corpora arrive as token tags in one of three
schemes, training needs one label id per subword and evaluation needs one tag per word back.
Every one of those conversions lives here, so that annotation, training and evaluation cannot
disagree about where an entity begins or ends. Every adjustment (an overlap dropped, a span
widened to whole tokens, an invalid tag transition repaired) is counted and handed back to the
caller, never applied silently.

Conventions: character offsets are 0-based and end-exclusive; token spans are
`(first token, end token exclusive, label)`; a tag is "O" or "<prefix>-<label>".
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from raysynth.documents import Entity
from raysynth.errors import AlignmentError, ConfigError

Scheme = Literal["IOB1", "IOB2", "BIOES"]
OverlapPolicy = Literal["longest", "first"]
TokenSpan = tuple[int, int, str]

#: The label id the Hugging Face loss ignores (torch's CrossEntropyLoss default ignore_index).
IGNORE_INDEX = -100

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PREFIXES: dict[str, frozenset[str]] = {
    "IOB1": frozenset("BI"),
    "IOB2": frozenset("BI"),
    "BIOES": frozenset("BIES"),
}
# BILOU writes BIOES's E and S as L and U; both spellings are read as BIOES.
_BILOU_ALIASES = {"L": "E", "U": "S"}
_OUTSIDE = ("O", "")
# Prefixes of the (first, middle, last) subwords of a word split into two or more subwords,
# chosen so that the subword tag sequence stays valid in the word's scheme.
_PIECE_PREFIXES = {
    "B": ("B", "I", "I"),
    "I": ("I", "I", "I"),
    "E": ("I", "I", "E"),
    "L": ("I", "I", "L"),
    "S": ("B", "I", "E"),
    "U": ("B", "I", "L"),
}


@dataclass
class AlignmentReport:
    """Counts of every adjustment made while aligning, so a stage can report them."""

    conflicts: int = 0  # entities dropped by resolve_overlaps
    expanded: int = 0  # entities whose boundary fell inside a token, widened to whole tokens
    unaligned: int = 0  # entities covering no token at all (e.g. only whitespace), not tagged
    repaired: int = 0  # invalid tag transitions repaired while decoding

    def add(self, other: AlignmentReport) -> None:
        """Add `other`'s counts to this report, to total them over a shard or a corpus."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def default_tokenize(text: str) -> list[tuple[int, int]]:
    """Character spans of the words and single punctuation characters of `text`.

    Used where a corpus brings no tokenization of its own (synthetic notes): splitting off
    every punctuation character keeps "fever," or "(aspirin)" from swallowing the mention.
    """
    return [m.span() for m in _TOKEN_RE.finditer(text)]


# --- tags <-> token spans ------------------------------------------------------------------


def _check_scheme(scheme: str) -> None:
    if scheme not in _PREFIXES:
        raise ConfigError(f"unknown tagging scheme {scheme!r}; expected one of IOB1, IOB2, BIOES")


def _parse_tag(tag: str, index: int, scheme: Scheme) -> tuple[str, str]:
    """Split a tag into (prefix, label), "O" into ("O", ""); reject what the scheme lacks."""
    if tag == "O":
        return _OUTSIDE
    prefix, sep, label = tag.partition("-")
    if scheme == "BIOES":
        prefix = _BILOU_ALIASES.get(prefix, prefix)
    if not sep or not label or prefix not in _PREFIXES[scheme]:
        allowed = "/".join(sorted(_PREFIXES[scheme]))
        raise AlignmentError(
            f"tag {index} is {tag!r}: expected 'O' or '<prefix>-<label>' with prefix {allowed}"
            + (" (or L/U)" if scheme == "BIOES" else "")
        )
    return prefix, label


def _continues(prev: tuple[str, str], cur: tuple[str, str], scheme: Scheme) -> bool:
    """Whether token `cur` extends the entity of the token before it."""
    if cur[0] not in ("I", "E") or prev[0] == "O" or prev[1] != cur[1]:
        return False
    if scheme == "BIOES":
        return prev[0] in ("B", "I")
    return True


def _is_valid(prev: tuple[str, str], cur: tuple[str, str], continues: bool, scheme: Scheme) -> bool:
    """Whether the transition prev -> cur is allowed by the strict scheme.

    IOB1 has no invalid transition: an I-X after anything but X starts an entity by definition,
    and a B-X that does not follow an X is unambiguous, so neither needs a repair.
    """
    if continues or scheme == "IOB1":
        return True
    if scheme == "IOB2":
        return cur[0] != "I"
    return cur[0] not in ("I", "E") and prev[0] not in ("B", "I")


def tags_to_token_spans(
    tags: Sequence[str], scheme: Scheme = "IOB2"
) -> tuple[list[TokenSpan], int]:
    """Decode a tag sequence into token spans, repairing invalid transitions leniently.

    The repairs are those of conlleval and seqeval's default mode, so scores stay comparable
    with published ones: an I-X that cannot continue an X entity starts one, and in BIOES an
    entity left open by B-X/I-X ends where the next tag does not continue it. Returns the spans
    and the number of invalid transitions (the sequence's start and end included) repaired.
    """
    _check_scheme(scheme)
    spans: list[TokenSpan] = []
    repaired = 0
    prev = _OUTSIDE
    start = 0
    # A trailing "O" closes the last entity and checks the transition to the end.
    for index, tag in enumerate([*tags, "O"]):
        cur = _parse_tag(tag, index, scheme)
        continues = _continues(prev, cur, scheme)
        if not _is_valid(prev, cur, continues, scheme):
            repaired += 1
        if not continues:
            if prev[0] != "O":
                spans.append((start, index, prev[1]))
            start = index
        prev = cur
    return spans, repaired


def _check_token_spans(spans: Sequence[TokenSpan], n_tokens: int) -> None:
    """Spans (sorted by start) must be non-empty, inside the sequence and disjoint."""
    prev_end = 0
    for start, end, label in spans:
        if not 0 <= start < end <= n_tokens:
            raise AlignmentError(f"token span ({start}, {end}) is empty or outside [0, {n_tokens})")
        if start < prev_end:
            raise AlignmentError(f"token span ({start}, {end}, {label!r}) overlaps another span")
        if not label:
            raise AlignmentError(f"token span ({start}, {end}) has an empty label")
        prev_end = end


def _span_tags(length: int, label: str, scheme: Scheme, after_same: bool) -> list[str]:
    """The tags of one entity of `length` tokens; `after_same` means an adjacent X precedes."""
    if scheme == "BIOES":
        if length == 1:
            return [f"S-{label}"]
        return [f"B-{label}", *[f"I-{label}"] * (length - 2), f"E-{label}"]
    first = "B" if scheme == "IOB2" or after_same else "I"
    return [f"{first}-{label}", *[f"I-{label}"] * (length - 1)]


def token_spans_to_tags(
    spans: Sequence[TokenSpan], n_tokens: int, scheme: Scheme = "IOB2"
) -> list[str]:
    """Encode token spans as tags; overlapping, empty or out-of-range spans are an error.

    In IOB1 an entity begins with I- unless it directly follows an entity of the same label,
    where B- is the only way to mark the boundary.
    """
    _check_scheme(scheme)
    ordered = sorted(spans)
    _check_token_spans(ordered, n_tokens)
    tags = ["O"] * n_tokens
    prev_end, prev_label = -1, ""
    for start, end, label in ordered:
        after_same = start == prev_end and label == prev_label
        tags[start:end] = _span_tags(end - start, label, scheme, after_same)
        prev_end, prev_label = end, label
    return tags


def convert_scheme(tags: Sequence[str], source: Scheme, target: Scheme) -> list[str]:
    """Re-encode tags in another scheme. Invalid transitions in `tags` are repaired as in
    `tags_to_token_spans`; call that first where the repairs must be counted."""
    spans, _ = tags_to_token_spans(tags, source)
    return token_spans_to_tags(spans, len(tags), target)


# --- overlapping entities ------------------------------------------------------------------


def _priority(span: TokenSpan, policy: OverlapPolicy) -> tuple[int, int, str]:
    start, end, label = span
    if policy == "longest":
        return (start - end, start, label)
    return (start, start - end, label)


def _overlaps(kept: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) shares a position with a kept span.

    `kept` is sorted and pairwise non-overlapping, so the ends increase with the starts and
    the last span starting before `end` is the only one that can reach past `start`.
    """
    before = bisect_left(kept, (end,))
    return before > 0 and kept[before - 1][1] > start


def _keep_non_overlapping(spans: Sequence[TokenSpan], policy: OverlapPolicy) -> list[int]:
    """Indices of the spans `policy` keeps: greedily, in priority order, each span that
    overlaps none kept so far and is not an exact duplicate of one."""
    if policy not in ("longest", "first"):
        raise ConfigError(f"unknown overlap policy {policy!r}; expected 'longest' or 'first'")
    order = sorted(range(len(spans)), key=lambda i: _priority(spans[i], policy))
    kept: list[tuple[int, int]] = []
    seen: set[TokenSpan] = set()
    keep: list[int] = []
    for i in order:
        start, end, _ = spans[i]
        if spans[i] in seen or _overlaps(kept, start, end):
            continue
        seen.add(spans[i])
        insort(kept, (start, end))
        keep.append(i)
    return keep


def resolve_overlaps(
    entities: Sequence[Entity], policy: OverlapPolicy = "longest"
) -> tuple[list[Entity], int]:
    """Make entities non-overlapping, as flat tags require, by a stated policy.

    "longest" keeps the longest entity (ties: earliest start, then label order) and drops
    every entity that overlaps a kept one, so a nested mention gives way to its container;
    "first" keeps the earliest start (ties: longest, then label order). Exact duplicates (same
    start, end and label) are dropped too. Returns the kept entities sorted by (start, end)
    and the number dropped, which the caller must report.
    """
    spans = [(e.start, e.end, e.label) for e in entities]
    kept = [entities[i] for i in _keep_non_overlapping(spans, policy)]
    kept.sort(key=lambda e: (e.start, e.end, e.label))
    return kept, len(entities) - len(kept)


# --- entities <-> tags ---------------------------------------------------------------------


def _check_char_spans(spans: Sequence[tuple[int, int]], what: str) -> None:
    """Token and word spans must be non-empty, disjoint and in text order: bisect needs it."""
    prev_end = 0
    for index, (start, end) in enumerate(spans):
        if start < prev_end or end <= start:
            raise AlignmentError(
                f"{what} span {index} ({start}, {end}) is empty, negative, "
                "out of order or overlaps the one before"
            )
        prev_end = end


def _covered_tokens(
    entity: Entity, starts: Sequence[int], ends: Sequence[int]
) -> tuple[int, int, bool] | None:
    """(first token, end token, widened?) of the tokens sharing a character with the entity,
    or None if it covers no token. A discontinuous entity covers the hull of its fragments."""
    first = last = -1
    widened = False
    for start, end in entity.fragments or ((entity.start, entity.end),):
        if start < 0 or end < start:
            raise AlignmentError(f"entity span ({start}, {end}) is not a valid character span")
        lo = bisect_right(ends, start)  # first token ending after `start`
        hi = bisect_left(starts, end)  # tokens before `hi` start before `end`
        if start == end or lo >= hi:
            continue
        first = lo if first < 0 else min(first, lo)
        last = max(last, hi)
        widened = widened or starts[lo] < start or ends[hi - 1] > end
    return (first, last, widened) if first >= 0 else None


def entities_to_tags(
    entities: Sequence[Entity],
    token_spans: Sequence[tuple[int, int]],
    scheme: Scheme = "IOB2",
    overlap: OverlapPolicy = "longest",
) -> tuple[list[str], AlignmentReport]:
    """Tag a tokenization with character-offset entities.

    An entity covers every token sharing at least one character with it, so a boundary inside
    a token widens the entity to the whole token (counted as `expanded`); an entity sharing no
    character with any token is not tagged (counted as `unaligned`). A discontinuous entity is
    tagged as ONE span from its first to its last covered token, gaps included: flat tags
    cannot express a gap, and the hull keeps the mention in a single entity. Overlaps are
    resolved by `overlap` first on characters, then again on tokens, since widening can make
    entities that were disjoint in characters share a token; both count as `conflicts`.
    """
    _check_char_spans(token_spans, "token")
    report = AlignmentReport()
    kept, report.conflicts = resolve_overlaps(entities, overlap)
    starts = [start for start, _ in token_spans]
    ends = [end for _, end in token_spans]
    candidates: list[TokenSpan] = []
    widened: list[bool] = []
    for entity in kept:
        covered = _covered_tokens(entity, starts, ends)
        if covered is None:
            report.unaligned += 1
            continue
        candidates.append((covered[0], covered[1], entity.label))
        widened.append(covered[2])
    keep = _keep_non_overlapping(candidates, overlap)
    report.conflicts += len(candidates) - len(keep)
    report.expanded = sum(widened[i] for i in keep)
    tags = token_spans_to_tags([candidates[i] for i in keep], len(token_spans), scheme)
    return tags, report


def tags_to_entities(
    tags: Sequence[str],
    token_spans: Sequence[tuple[int, int]],
    text: str,
    scheme: Scheme = "IOB2",
) -> tuple[list[Entity], int]:
    """Character-offset entities from token tags: each runs from the start of its first token
    to the end of its last, with `text` filled in. Returns them and the repaired count."""
    if len(tags) != len(token_spans):
        raise AlignmentError(f"{len(tags)} tags for {len(token_spans)} tokens")
    spans, repaired = tags_to_token_spans(tags, scheme)
    entities = []
    for first, last, label in spans:
        start, end = token_spans[first][0], token_spans[last - 1][1]
        entities.append(Entity(start=start, end=end, label=label, text=text[start:end]))
    return entities, repaired


# --- words <-> Hugging Face subwords -------------------------------------------------------


def _subword_words(
    offsets: Sequence[tuple[int, int]],
    word_spans: Sequence[tuple[int, int]],
    special_mask: Sequence[int] | None,
) -> list[int]:
    """For each subword, the index of the word containing its first character, or -1 for a
    special subword or one outside every word. Aligning by character offsets rather than by
    `word_ids()` works for any fast tokenizer run on the text itself, whatever its
    pre-tokenizer makes of the words."""
    if special_mask is not None and len(special_mask) != len(offsets):
        raise AlignmentError(f"special_mask has {len(special_mask)} entries for {len(offsets)}")
    _check_char_spans(word_spans, "word")
    starts = [start for start, _ in word_spans]
    words = []
    for index, (start, end) in enumerate(offsets):
        special = special_mask[index] == 1 if special_mask is not None else start >= end
        word = bisect_right(starts, start) - 1
        if special or word < 0 or start >= word_spans[word][1]:
            word = -1
        words.append(word)
    return words


def _group_by_word(words: Sequence[int]) -> list[tuple[int, list[int]]]:
    """Runs of consecutive subword indices of one word, in order; -1 entries left out."""
    groups: list[tuple[int, list[int]]] = []
    for index, word in enumerate(words):
        if word < 0:
            continue
        if groups and groups[-1][0] == word:
            groups[-1][1].append(index)
        else:
            groups.append((word, [index]))
    return groups


def _piece_tag(tag: str, position: int, n_pieces: int) -> str:
    """The tag of subword `position` of `n_pieces` of a word tagged `tag`."""
    if tag == "O" or n_pieces == 1:
        return tag
    prefix, _, label = tag.partition("-")
    if prefix not in _PIECE_PREFIXES or not label:
        raise AlignmentError(f"word tag {tag!r} is not 'O' or '<prefix>-<label>'")
    slot = 0 if position == 0 else 2 if position == n_pieces - 1 else 1
    return f"{_PIECE_PREFIXES[prefix][slot]}-{label}"


def _label_id(tag: str, label2id: Mapping[str, int]) -> int:
    try:
        return label2id[tag]
    except KeyError:
        raise AlignmentError(f"tag {tag!r} is not in label2id ({len(label2id)} labels)") from None


def subword_labels(
    offsets: Sequence[tuple[int, int]],
    word_spans: Sequence[tuple[int, int]],
    word_tags: Sequence[str],
    label2id: Mapping[str, int],
    mode: Literal["first", "all"] = "first",
    special_mask: Sequence[int] | None = None,
) -> list[int]:
    """Training label ids for the subwords of a fast tokenizer's offset mapping on the text.

    A subword is special when `special_mask[i] == 1` or, without a mask, when its offsets are
    empty such as (0, 0); special subwords, and subwords inside no word, get IGNORE_INDEX.
    Any other subword belongs to the word whose span contains its first character. With mode
    "first" (run_ner.py's default) a word's first subword gets the word's label and the rest
    IGNORE_INDEX; with "all" every subword is labelled, re-prefixed so that the sequence stays
    valid (a B-X word's continuations are I-X; in BIOES an S-X word becomes B-X ... E-X).
    """
    if len(word_tags) != len(word_spans):
        raise AlignmentError(f"{len(word_tags)} word tags for {len(word_spans)} words")
    if mode not in ("first", "all"):
        raise ConfigError(f"unknown subword label mode {mode!r}; expected 'first' or 'all'")
    labels = [IGNORE_INDEX] * len(offsets)
    for word, pieces in _group_by_word(_subword_words(offsets, word_spans, special_mask)):
        tag = word_tags[word]
        if mode == "first":
            labels[pieces[0]] = _label_id(tag, label2id)
            continue
        for position, index in enumerate(pieces):
            labels[index] = _label_id(_piece_tag(tag, position, len(pieces)), label2id)
    return labels


def tokenize_windows(tokenizer: Any, text: str | list[str], max_length: int, stride: int) -> Any:
    """A text (or a batch of texts) cut into windows of at most `max_length` subwords, each
    overlapping the previous one by `stride`, with the offsets and special-token masks that
    `subword_labels` and `window_word_predictions` need. The one definition of a window,
    shared by training and evaluation; `tokenizer` is a Hugging Face fast tokenizer."""
    return tokenizer(
        text,
        max_length=max_length,
        stride=stride,
        truncation=True,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )


def word_predictions(
    offsets: Sequence[tuple[int, int]],
    word_spans: Sequence[tuple[int, int]],
    subword_tags: Sequence[str],
    special_mask: Sequence[int] | None = None,
) -> tuple[list[str], int]:
    """Word tags from one window's subword predictions: `window_word_predictions` with a
    single window. Returns (word tags, words that received no subword)."""
    return window_word_predictions([(offsets, subword_tags, special_mask)], word_spans)


def window_word_predictions(
    windows: Sequence[tuple[Sequence[tuple[int, int]], Sequence[str], Sequence[int] | None]],
    word_spans: Sequence[tuple[int, int]],
) -> tuple[list[str], int]:
    """The one decoder from subword predictions to word tags, for evaluation and prediction.

    `windows` holds, per window of a document, (offsets, predicted subword tags, special
    mask). Each word takes the predicted tag of its first subword, mirroring how "first" mode
    trains. A word seen by several overlapping windows takes the prediction of the window in
    which its first subword is farthest from the nearer window edge (most context on both
    sides); ties go to the earlier window, which also settles a word cut by a window start.
    A word no window saw gets "O" and is counted, so a report can say how much of the text the
    model never saw. Returns (word tags, missing).
    """
    best: list[tuple[int, str] | None] = [None] * len(word_spans)
    for offsets, subword_tags, special_mask in windows:
        if len(subword_tags) != len(offsets):
            raise AlignmentError(f"{len(subword_tags)} subword tags for {len(offsets)} subwords")
        groups = _group_by_word(_subword_words(offsets, word_spans, special_mask))
        if not groups:
            continue
        first, last = groups[0][1][0], groups[-1][1][-1]
        for word, pieces in groups:
            context = min(pieces[0] - first, last - pieces[0])
            if best[word] is None or context > best[word][0]:
                best[word] = (context, subword_tags[pieces[0]])
    missing = best.count(None)
    return [b[1] if b is not None else "O" for b in best], missing
