"""Reading an LLM's answer, one parser per answer format; nothing in an answer is executed.

Real answers from small models are messy: code fences, prose around the JSON, JSON cut off at
the token limit, keys that are not the labels ("diseases", "disease_mentions"), values of the
wrong type, tags the prompt never named. Each parser takes what can be read, counts what it
had to drop, and reports an error only when nothing usable is left. Positions are not trusted
here: turning mentions into spans of the note is alignment's job (`raysynth.annotate.align`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from raysynth.annotate.prompts import tag_name

_FENCE = re.compile(r"```[a-zA-Z]*")
MAX_CUTS = 64  # cut points tried when closing a truncated answer
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class Parsed:
    """What one answer said: mentions (json), tagged plain text (inline) or token tags
    (tokens); `error` set when the answer is unusable; `dropped` counts the pieces left out
    (unknown labels, values of the wrong type)."""

    mentions: list[tuple[str, str]] = field(default_factory=list)  # (text, label)
    plain: str | None = None  # inline: the answer without tags
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # inline: into `plain`
    tokens: list[tuple[str, str]] = field(default_factory=list)  # tokens: (token, tag)
    error: str | None = None
    dropped: int = 0


def label_lookup(labels: Sequence[str]) -> dict[str, str]:
    """Spellings a model uses for a label -> the label: case, plural, tag form, `_mentions`."""
    lookup: dict[str, str] = {}
    for label in labels:
        base = tag_name(label)
        for form in (base, f"{base}s", f"{base}es", f"{base}_mentions", f"{base}_entities"):
            lookup.setdefault(form, label)
    return lookup


def _canonical(key: str, lookup: dict[str, str]) -> str | None:
    return lookup.get(tag_name(key))


# --- json -------------------------------------------------------------------------------


def parse_json(answer: str, labels: Sequence[str]) -> Parsed:
    """Mentions from a `{label: [mention, ...]}` answer, or a list of `{text, label}`."""
    lookup = label_lookup(labels)
    body = _FENCE.sub("", answer or "")
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        return Parsed(error="no JSON in the answer")
    value = _loads_prefix(body[start:])
    if value is None:
        return _salvage(body[start:], lookup)
    parsed = Parsed()
    for label, item in _pairs(value):
        canonical = _canonical(label, lookup) if label is not None else None
        if canonical is None or not isinstance(item, str) or not item.strip():
            parsed.dropped += 1
            continue
        parsed.mentions.append((item.strip(), canonical))
    return parsed


def _loads_prefix(text: str) -> object | None:
    """The first JSON value in `text`, closing it if the answer was cut off."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
        return value
    except json.JSONDecodeError:
        pass
    closed = _close(text)
    try:
        return json.loads(closed) if closed else None
    except json.JSONDecodeError:
        return None


def _close(text: str) -> str | None:
    """A cut-off JSON text completed: cut after the last complete string or bracket that
    makes it valid once the open brackets are closed (tried from the end, a bounded number of
    times). Hand-written because the json module has no partial mode."""
    cuts = [i + 1 for i, ch in enumerate(text) if ch in '"]}']
    for cut in reversed(cuts[-MAX_CUTS:]):
        head = text[:cut]
        closers = _still_open(head)
        if closers is None:
            continue
        try:
            json.loads(head + "".join(reversed(closers)))
        except json.JSONDecodeError:
            continue
        return head + "".join(reversed(closers))
    return None


def _still_open(text: str) -> list[str] | None:
    """Closing brackets `text` needs, innermost last; None if it ends inside a string."""
    stack, in_string, escape = [], False, False
    for ch in text:
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}" and stack:
            stack.pop()
    return None if in_string else stack


def _pairs(value: object) -> list[tuple[str | None, object]]:
    """(label, mention) pairs from the answer shapes models produce."""
    if isinstance(value, dict):
        pairs: list[tuple[str | None, object]] = []
        for key, items in value.items():
            for item in items if isinstance(items, list) else [items]:
                pairs.append((key, _mention_text(item)))
        return pairs
    if isinstance(value, list):
        return [
            (item.get("label") or item.get("type"), _mention_text(item))
            if isinstance(item, dict)
            else (None, item)
            for item in value
        ]
    return [(None, value)]


def _mention_text(item: object) -> object:
    if isinstance(item, dict):
        return item.get("text") or item.get("mention") or item.get("name")
    return item


def _salvage(text: str, lookup: dict[str, str]) -> Parsed:
    """Last resort for broken JSON: the quoted strings after each `"label": [`."""
    parsed = Parsed()
    for match in re.finditer(r'"([^"]{1,40})"\s*:\s*\[([^\]]*)', text):
        label = _canonical(match.group(1), lookup)
        strings = [s for s in _STRING.findall(match.group(2)) if s.strip()]
        if label is None:
            parsed.dropped += len(strings)
            continue
        parsed.mentions += [(s.strip(), label) for s in strings]
    if not parsed.mentions and not parsed.dropped:
        parsed.error = "unparseable JSON"
    return parsed


# --- inline -----------------------------------------------------------------------------

_TAG = re.compile(r"<(/?)\s*([A-Za-z][\w -]{0,40}?)\s*>")


def parse_inline(answer: str, labels: Sequence[str]) -> Parsed:
    """The answer's text without tags, and the tagged spans in it. Unknown tags are removed
    (counted); an unclosed or stray closing tag is dropped."""
    lookup = label_lookup(labels)
    body = _FENCE.sub("", answer or "").strip()
    body = re.sub(r"</?\s*text\s*>", "", body, flags=re.I)
    parsed, plain, at = Parsed(), [], 0
    open_tags: dict[str, int] = {}
    length = 0
    for match in _TAG.finditer(body):
        plain.append(body[at : match.start()])
        length += match.start() - at
        at = match.end()
        label = _canonical(match.group(2), lookup)
        if label is None:
            parsed.dropped += 1
        elif not match.group(1):
            parsed.dropped += label in open_tags  # reopened: the earlier one never closed
            open_tags[label] = length
        elif label in open_tags:
            start = open_tags.pop(label)
            if length > start:
                parsed.spans.append((start, length, label))
        else:
            parsed.dropped += 1
    plain.append(body[at:])
    parsed.dropped += len(open_tags)
    parsed.plain = "".join(plain)
    if not parsed.plain.strip():
        parsed.error = "empty answer"
    return parsed


# --- tokens -----------------------------------------------------------------------------

_LINE = re.compile(r"^\s*(.+?)\s*(?::|\t|\s)\s*([BIO](?:-\S+)?|[A-Za-z_]+)\s*$")


def parse_tokens(answer: str, labels: Sequence[str]) -> Parsed:
    """(token, IOB2 tag) per `token : label` line; an unknown label becomes O (counted),
    a bare label becomes B- or I- by whether the token before had it."""
    lookup = label_lookup(labels)
    parsed = Parsed()
    previous = "O"
    for line in _FENCE.sub("", answer or "").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        token, raw = match.group(1), match.group(2)
        tag = _tag(raw, previous, lookup)
        if tag is None:
            parsed.dropped += 1
            tag = "O"
        parsed.tokens.append((token, tag))
        previous = tag
    if not parsed.tokens:
        parsed.error = "no `token : label` lines"
    return parsed


def _tag(raw: str, previous: str, lookup: dict[str, str]) -> str | None:
    if raw.upper() == "O":
        return "O"
    prefix, _, name = raw.partition("-")
    if not name:  # a bare label, e.g. "Disease"
        label = _canonical(raw, lookup)
        if label is None:
            return None
        return f"I-{label}" if previous.endswith(f"-{label}") else f"B-{label}"
    label = _canonical(name, lookup)
    if label is None or prefix.upper() not in ("B", "I"):
        return None
    return f"{prefix.upper()}-{label}"


PARSERS = {"json": parse_json, "inline": parse_inline, "tokens": parse_tokens}
