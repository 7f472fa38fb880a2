"""From what the model returned to character spans of the original note.

A span is only ever made from text that is in the note: a mention that cannot be found is
counted as hallucinated and labels nothing. Three ways in, one per answer format:
- mentions (json): searched in the note, exact case first, then ignoring case; white space
  inside a mention matches any white space; a match must start and end at word boundaries;
- tagged text (inline): the model's copy of the note is aligned to the note character by
  character (difflib), so tags survive changed white space, quotes or a dropped word;
- token tags (tokens): by position when the model kept the tokenization, else token strings
  are aligned first.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from raysynth.alignment import default_tokenize, tags_to_entities, tags_to_token_spans
from raysynth.annotate.parse import Parsed
from raysynth.documents import Entity

_STRIP = " \t\n\"'`.,;:()[]{}"


@dataclass
class Aligned:
    """Spans found in the note, and how many of the model's mentions were not in it."""

    entities: list[Entity] = field(default_factory=list)
    mentions: int = 0
    hallucinated: int = 0


def _bounded(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def find_spans(text: str, mention: str, first_only: bool = False) -> list[tuple[int, int]]:
    """Word-bounded occurrences of `mention` in `text`: those with the same case if any,
    else those ignoring case; any run of white space matches any other."""
    words = mention.split()
    if not words:
        return []
    pattern = r"\s+".join(re.escape(w) for w in words)
    for flags in (0, re.IGNORECASE):
        spans = [m.span() for m in re.finditer(pattern, text, flags) if _bounded(text, *m.span())]
        if spans:
            return spans[:1] if first_only else spans
    return []


def align_mentions(
    text: str, mentions: Sequence[tuple[str, str]], occurrences: str = "all"
) -> Aligned:
    """Spans of json mentions; a repeated mention is searched once."""
    out = Aligned()
    seen: set[tuple[str, str]] = set()
    for mention, label in mentions:
        mention = mention.strip(_STRIP)
        out.mentions += 1
        if (mention.lower(), label) in seen:
            continue
        seen.add((mention.lower(), label))
        spans = find_spans(text, mention, first_only=occurrences == "first")
        if not spans:
            out.hallucinated += 1
        out.entities += [Entity(s, e, label, text[s:e], "llm") for s, e in spans]
    return out


def align_inline(text: str, parsed: Parsed) -> Aligned:
    """Map spans of the model's tagged copy (`parsed.plain`) back onto `text`. A span whose
    ends fall in text the model changed is widened to whole words of the note; one whose
    characters are mostly not in the note is counted as hallucinated."""
    out = Aligned(mentions=len(parsed.spans))
    plain = parsed.plain or ""
    matcher = difflib.SequenceMatcher(None, plain, text, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    for start, end, label in parsed.spans:
        mapped = _map_range(blocks, start, end)
        span = _snap(text, *mapped) if mapped else None
        if span is None:
            out.hallucinated += 1
            continue
        out.entities.append(Entity(span[0], span[1], label, text[span[0] : span[1]], "llm"))
    return out


def _map_range(blocks, start: int, end: int) -> tuple[int, int] | None:
    """Note offsets of the first and last characters of plain[start:end] that are matched;
    None unless most of its characters are (else it is text the model made up)."""
    positions = [
        b.b + i - b.a for b in blocks for i in range(max(start, b.a), min(end, b.a + b.size))
    ]
    if 2 * len(positions) < end - start:
        return None
    return positions[0], positions[-1] + 1


def _snap(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span trimmed of surrounding punctuation and widened to the note's word edges."""
    while start < end and text[start] in _STRIP:
        start += 1
    while end > start and text[end - 1] in _STRIP:
        end -= 1
    if start >= end:
        return None
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


def align_tokens(text: str, parsed: Parsed) -> Aligned:
    """Entities from token tags, put on the note's own tokens (`default_tokenize`)."""
    spans = default_tokenize(text)
    tags = ["O"] * len(spans)
    words = [text[s:e] for s, e in spans]
    returned = [token for token, _ in parsed.tokens]
    if [w.lower() for w in returned] == [w.lower() for w in words]:
        tags = [tag for _, tag in parsed.tokens]
    else:
        matcher = difflib.SequenceMatcher(
            None, [w.lower() for w in returned], [w.lower() for w in words], autojunk=False
        )
        for block in matcher.get_matching_blocks():
            for i in range(block.size):
                tags[block.b + i] = parsed.tokens[block.a + i][1]
    entities, _ = tags_to_entities(tags, spans, text) if spans else ([], 0)
    returned_spans, _ = tags_to_token_spans([tag for _, tag in parsed.tokens])
    out = Aligned(mentions=len(returned_spans))
    out.entities = [Entity(e.start, e.end, e.label, e.text, "llm") for e in entities]
    out.hallucinated = max(0, out.mentions - len(out.entities))
    return out


def align(text: str, fmt: str, parsed: Parsed, occurrences: str = "all") -> Aligned:
    """Spans in `text` of one parsed answer of format `fmt`."""
    if fmt == "json":
        return align_mentions(text, parsed.mentions, occurrences)
    if fmt == "inline":
        return align_inline(text, parsed)
    return align_tokens(text, parsed)
