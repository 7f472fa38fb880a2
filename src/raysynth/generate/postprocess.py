"""Post-processing of generated text: clean-up, length limits, duplicate keys and the
location of each seeded entity.

Cleaning removes what a small chat model wraps around a note (FINDINGS.md: about 9% of
sentences were meta-text such as "A clinical case report mentioning ..."): chat-template
tokens, markdown fences, an echo of the prompt, lead-in lines ("Sure! Here is ...") and
sign-off lines ("I hope this helps"). Seeds are located in three tiers, each tried only when
the previous found nothing: exact, case-insensitive, then a bounded fuzzy match (same number
of words, similarity >= FUZZY_MIN, at most one edit per FUZZY_CHARS_PER_EDIT characters, each
word >= FUZZY_WORD_MIN like the seed's word in its place). A
seed found nowhere is recorded as `missing`, never given an invented span.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from typing import Any

from datasketch import MinHash

from raysynth.alignment import resolve_overlaps
from raysynth.documents import Entity

FUZZY_MIN = 0.85
FUZZY_CHARS_PER_EDIT = 6
FUZZY_WORD_MIN = 0.8  # 'disease'/'diseases', 'metabolic'/'metabolism'; not 'for'/'13'
MINHASH_PERMS = 32
# 4 bands x 8 rows over character 5-grams: a pair is caught with P ~ 0.97 at Jaccard 0.9,
# ~ 0.6 at 0.8, ~ 0.02 at 0.5 (threshold about (1/4)^(1/8) = 0.84). Conservative on purpose:
# there is no verification step, so a low threshold would remove distinct notes.
MINHASH_BANDS = 4

_SPECIAL_TOKENS = re.compile(
    r"<\|im_start\|>\s*(assistant|system|user)?|<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]"
)
_FENCE = re.compile(r"^```[a-z]*\s*$", re.M)
# Markup of web text, which base models (Gemma 3 base) write: '<em>CFTR</em>' (inline: the
# tag goes) and '</p><p>' (a break: a space stays). Tag names only, so 'p<b, a>c' stays.
_INLINE_TAG = re.compile(r"</?(?:em|strong|b|i|u|sub|sup|span)(?:\s[^<>]{0,80})?/?>", re.I)
_BREAK_TAG = re.compile(r"(?:\s*</?(?:p|br|div)(?:\s[^<>]{0,80})?/?>\s*)+", re.I)
_ROLE_PREFIX = re.compile(r"^\s*(assistant|system|user)\s*:\s*", re.I)
_LEAD_IN = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|absolutely|here is|here's|here are|below is|"
    r"the following|this (is|note|sentence)|i have written|as requested|"
    r"an? (clinical|synthetic|biomedical|medical|short|brief|sample|realistic)\b[^.\n]*"
    r"\b(mention|containing|with the terms|including))",
    re.I,
)
_SIGN_OFF = re.compile(
    r"^\s*(i hope|let me know|feel free|note:|please note|this (note|sentence) "
    r"(mentions|contains|includes)|\(?word count)",
    re.I,
)
_WORD = re.compile(r"\w+")


def clean(text: str, prompt_texts: list[str]) -> str:
    """The note without chat artefacts, prompt echo, lead-in and sign-off lines."""
    text = _SPECIAL_TOKENS.sub("", text)
    text = _FENCE.sub("", text)
    text = _BREAK_TAG.sub(" ", _INLINE_TAG.sub("", text))
    text = _ROLE_PREFIX.sub("", text)
    for prompt in prompt_texts:
        head = prompt.strip()
        if head and text.lstrip().startswith(head):
            text = text.lstrip()[len(head) :]
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _LEAD_IN.match(lines[0]):
        colon = lines[0].find(":")
        if 0 <= colon < 120 and lines[0][colon + 1 :].strip():
            lines[0] = lines[0][colon + 1 :].strip()  # "Here is the note: Pt with ..."
        elif len(lines) > 1:
            lines.pop(0)  # a lead-in line of its own
    while lines and (not lines[-1].strip() or _SIGN_OFF.match(lines[-1])):
        lines.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip().strip('"').strip()


def cut(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to at most max_chars at the last sentence end (else the last space)."""
    if len(text) <= max_chars:
        return text, False
    head = text[:max_chars]
    end = max(head.rfind(". "), head.rfind(".\n"), head.rfind("\n"))
    if end < max_chars // 2:
        end = head.rfind(" ")
    return head[: end + 1 if end > 0 else max_chars].rstrip(), True


# --- seed location ----------------------------------------------------------------------


def _bounded(text: str, start: int, end: int) -> bool:
    """The match is not part of a longer word."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or after.isalnum())


def _find_all(text: str, mention: str, flags: int) -> list[tuple[int, int]]:
    pattern = re.compile(re.escape(mention), flags)
    return [
        (m.start(), m.end()) for m in pattern.finditer(text) if _bounded(text, m.start(), m.end())
    ]


def _fuzzy(text: str, mention: str) -> list[tuple[int, int]]:
    """The best window of as many words as the mention, if close enough (bounded edits) and
    each of its words close to the mention's word in the same place: without that check a
    seed such as 'hypertrophic cardiomyopathy 13', whose subtype number the model dropped,
    matched 'for hypertrophic cardiomyopathy', a span with a wrong boundary."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    targets = _WORD.findall(mention.lower())
    n = len(targets)
    if n == 0 or len(words) < n:
        return []
    target = mention.lower()
    max_edits = max(1, len(mention) // FUZZY_CHARS_PER_EDIT)
    best, best_ratio = None, FUZZY_MIN
    for i in range(len(words) - n + 1):
        start, end = words[i][0], words[i + n - 1][1]
        window = text[start:end].lower()
        if abs(len(window) - len(target)) > max_edits:
            continue
        ratio = difflib.SequenceMatcher(None, window, target).ratio()
        pairs = zip((text[s:e].lower() for s, e in words[i : i + n]), targets, strict=True)
        if ratio >= best_ratio and all(_similar(a, b) for a, b in pairs):
            best, best_ratio = (start, end), ratio
    return [best] if best else []


def _similar(word: str, target: str) -> bool:
    return word == target or difflib.SequenceMatcher(None, word, target).ratio() >= FUZZY_WORD_MIN


def locate(text: str, mention: str) -> tuple[str, list[tuple[int, int]]]:
    """(tier, spans): every bounded occurrence at the first tier that finds one; tier is
    `exact`, `case`, `fuzzy` or `missing`."""
    for tier, finder in (
        ("exact", lambda: _find_all(text, mention, 0)),
        ("case", lambda: _find_all(text, mention, re.IGNORECASE)),
        ("fuzzy", lambda: _fuzzy(text, mention)),
    ):
        spans = finder()
        if spans:
            return tier, spans
    return "missing", []


def seed_spans(text: str, seeds: list[dict[str, str]]) -> tuple[list[dict], list[dict], int]:
    """(entities with source=seed, one match record per seed, overlaps dropped). Where two
    seeds' spans overlap, the longest is kept (raysynth.alignment's policy) and the drop is
    counted."""
    entities, matches = [], []
    for seed in seeds:
        tier, spans = locate(text, seed["text"])
        matches.append(
            {
                "text": seed["text"],
                "label": seed["label"],
                "match": tier,
                "start": spans[0][0] if spans else None,
                "end": spans[0][1] if spans else None,
                "count": len(spans),
            }
        )
        entities += [Entity(s, e, seed["label"], text[s:e], "seed") for s, e in spans]
    kept, dropped = resolve_overlaps(entities, "longest")
    return [e.to_row() for e in kept], matches, dropped


# --- duplicate keys ---------------------------------------------------------------------


def exact_key(text: str) -> str:
    """Equal for texts that differ only in case and white space."""
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()[:16]


# One family of hash permutations for every process, so that every worker's keys agree.
_MINHASH = MinHash(num_perm=MINHASH_PERMS, seed=1)


def near_keys(text: str) -> list[str]:
    """MinHash-LSH band keys over character 5-grams of the normalised text: two notes
    sharing a key are near-duplicates (5-gram Jaccard similarity about 0.84 or more)."""
    norm = " ".join(_WORD.findall(text.lower()))
    shingles = {norm[i : i + 5].encode() for i in range(max(1, len(norm) - 4))}
    sketch = MinHash(
        num_perm=MINHASH_PERMS, permutations=_MINHASH.permutations, scheme=_MINHASH.scheme
    )
    sketch.update_batch(list(shingles))
    rows = MINHASH_PERMS // MINHASH_BANDS
    signature = sketch.hashvalues.tolist()
    return [
        f"{b}:" + hashlib.sha1(str(signature[b * rows : (b + 1) * rows]).encode()).hexdigest()[:16]
        for b in range(MINHASH_BANDS)
    ]


def dup_keys(text: str) -> list[str]:
    """The keys the de-duplication compares: the exact key (prefix `x:`), then the bands."""
    return [f"x:{exact_key(text)}", *near_keys(text)]


def process(row: dict[str, Any], min_chars: int, max_chars: int) -> dict[str, Any]:
    """One note's post-processing: cleaned text, status before de-duplication, spans,
    matches and duplicate keys. The de-duplicating writer makes the final decision."""
    out = {"status": "ok", "reason": None, "entities": [], "seed_matches": [], "dup_keys": []}
    if row.get("llm_status") != "ok":
        return {**out, "text": None, "status": "failed", "reason": f"llm: {row.get('llm_error')}"}
    prompts = [m["content"] for m in row.get("messages") or []] + [row.get("prompt") or ""]
    text, truncated = cut(clean(row["response"] or "", prompts), max_chars)
    if len(text) < min_chars:
        return {**out, "text": text, "status": "removed", "reason": "too short after cleaning"}
    if _LEAD_IN.match(text):
        return {**out, "text": text, "status": "removed", "reason": "meta-text"}
    entities, matches, dropped = seed_spans(text, row.get("seed_entities") or [])
    notes = [r for r, on in (("truncated", truncated), (f"{dropped} overlapping", dropped)) if on]
    return {
        **out,
        "text": text,
        "reason": "; ".join(notes) or None,
        "entities": entities,
        "seed_matches": matches,
        "dup_keys": dup_keys(text),
    }
