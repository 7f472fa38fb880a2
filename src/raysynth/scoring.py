"""The one place NER output is scored: annotator evaluation, model selection and reports.

Two views of the same output, because they answer different questions:

- **Entity level over IOB2 tags** (seqeval). Entities are read from the tags in two modes:
  `strict` (seqeval `mode="strict", scheme=IOB2`: an entity starts only at `B-`, so a stray
  `I-` is not an entity) and `default` (seqeval's conlleval-compatible lenient chunking: an `I-`
  after `O` or after another type starts an entity). Papers report either; we keep both.
- **Character spans** (`Entity` offsets), which do not depend on a tokenizer: `exact` match of
  (start, end, label), and `partial` match, where any overlap of one character or more with a
  same-label gold counts.

Entities come from seqeval's own chunkers (`get_entities`, `seqeval.scheme.Entities`), but the
counts (tp, n_pred, n_gold) are computed here and P/R/F1 derived from them, so the numbers are
exact, the JSON carries the counts, and the zero-division cases are defined once (see
`PRF.from_counts`) instead of by seqeval's warning path: seqeval's metric functions (and their
`UndefinedMetricWarning`) are never called.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

from raysynth.documents import Document, Entity

Mode = Literal["strict", "default"]

# An entity read from tags: (document index, label, start token, end token exclusive).
_TagEntity = tuple[int, str, int, int]
# An entity given as a character span: (document index, start, end, label).
_SpanKey = tuple[int, int, int, str]


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _harmonic(precision: float, recall: float) -> float:
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 with the counts they come from; `n_gold` is the support.

    A zero denominator gives 0.0: precision is 0.0 when there are no predictions, recall is 0.0
    when there is no gold, and F1 is 0.0 when precision + recall is 0. In particular no gold and
    no predictions gives P = R = F1 = 0.0 with support 0 (not 1.0: nothing was found, and an
    average over types must not be lifted by a type that never occurs).
    """

    precision: float
    recall: float
    f1: float
    tp: int
    n_pred: int
    n_gold: int

    @classmethod
    def from_counts(cls, tp: int, n_pred: int, n_gold: int) -> PRF:
        """P = tp / n_pred, R = tp / n_gold, F1 = 2 tp / (n_pred + n_gold) (their harmonic
        mean, computed from the counts so it is exact to one rounding)."""
        if not 0 <= tp <= min(n_pred, n_gold):
            raise ValueError(f"inconsistent counts: tp={tp}, n_pred={n_pred}, n_gold={n_gold}")
        return cls(
            precision=_ratio(tp, n_pred),
            recall=_ratio(tp, n_gold),
            f1=_ratio(2 * tp, n_pred + n_gold),
            tp=tp,
            n_pred=n_pred,
            n_gold=n_gold,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "n_pred": self.n_pred,
            "n_gold": self.n_gold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PRF:
        # The stored floats are kept as they are: partial-match recall is not tp / n_gold.
        return cls(
            precision=float(d["precision"]),
            recall=float(d["recall"]),
            f1=float(d["f1"]),
            tp=int(d["tp"]),
            n_pred=int(d["n_pred"]),
            n_gold=int(d["n_gold"]),
        )


@dataclass(frozen=True)
class ScoreSet:
    """Scores under one matching rule: `overall` is the micro average over all entities;
    `per_type` has every label seen in gold or pred, sorted by name (a label that occurs only
    in tags no entity is read from, such as a stray `I-X` in strict mode, is there with
    zero counts, so strict and default sets have the same keys)."""

    overall: PRF
    per_type: dict[str, PRF]

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_dict(),
            "per_type": {label: prf.to_dict() for label, prf in self.per_type.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreSet:
        per_type = {str(k): PRF.from_dict(v) for k, v in d["per_type"].items()}
        return cls(overall=PRF.from_dict(d["overall"]), per_type=dict(sorted(per_type.items())))


@dataclass(frozen=True)
class Scores:
    """Every score of one evaluation; `span_exact` and `span_partial` are None when character
    spans were not given. Serializes to JSON and back without loss."""

    seqeval_strict: ScoreSet
    seqeval_default: ScoreSet
    span_exact: ScoreSet | None
    span_partial: ScoreSet | None
    n_docs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_docs": self.n_docs,
            "seqeval_strict": self.seqeval_strict.to_dict(),
            "seqeval_default": self.seqeval_default.to_dict(),
            "span_exact": self.span_exact.to_dict() if self.span_exact else None,
            "span_partial": self.span_partial.to_dict() if self.span_partial else None,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scores:
        def optional(key: str) -> ScoreSet | None:
            return ScoreSet.from_dict(d[key]) if d.get(key) is not None else None

        return cls(
            seqeval_strict=ScoreSet.from_dict(d["seqeval_strict"]),
            seqeval_default=ScoreSet.from_dict(d["seqeval_default"]),
            span_exact=optional("span_exact"),
            span_partial=optional("span_partial"),
            n_docs=int(d["n_docs"]),
        )

    def summary(self) -> str:
        """A short table: per type and overall in strict mode, then the overall line of each
        other matching rule."""
        names = list(self.seqeval_strict.per_type) + ["overall", "span partial"]
        width = max(len(n) for n in names)
        head = f"{'':{width}}  {'P':>6} {'R':>6} {'F1':>6} {'tp':>7} {'pred':>7} {'gold':>7}"
        lines = [f"entity-level scores, {self.n_docs} documents (seqeval strict, IOB2)", head]
        lines += [_row(label, prf, width) for label, prf in self.seqeval_strict.per_type.items()]
        lines.append(_row("overall", self.seqeval_strict.overall, width))
        lines.append("")
        lines.append(_row("default mode", self.seqeval_default.overall, width))
        if self.span_exact is not None:
            lines.append(_row("span exact", self.span_exact.overall, width))
        if self.span_partial is not None:
            lines.append(_row("span partial", self.span_partial.overall, width))
        return "\n".join(lines)


def _row(name: str, prf: PRF, width: int) -> str:
    return (
        f"{name:{width}}  {prf.precision:6.4f} {prf.recall:6.4f} {prf.f1:6.4f} "
        f"{prf.tp:7d} {prf.n_pred:7d} {prf.n_gold:7d}"
    )


def _score_set(
    labels: Iterable[str],
    tp: Counter[str],
    n_pred: Counter[str],
    n_gold: Counter[str],
) -> ScoreSet:
    per_type = {
        label: PRF.from_counts(tp[label], n_pred[label], n_gold[label]) for label in sorted(labels)
    }
    overall = PRF.from_counts(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return ScoreSet(overall=overall, per_type=per_type)


# ---------------------------------------------------------------------------------------------
# IOB2 tags


def _tag_label(tag: str, doc: int, token: int, side: str) -> str | None:
    """The label of an IOB2 tag (None for `O`); anything else is refused here, once, because
    seqeval's two chunkers read malformed tags differently (and one only warns)."""
    if tag == "O":
        return None
    label = tag[2:]
    if tag[:2] not in ("B-", "I-") or not label or label[0] == "-" or label[-1] == "-":
        raise ValueError(
            f"{side} document {doc}, token {token}: tag {tag!r} is not IOB2 "
            "('O', 'B-<label>' or 'I-<label>')"
        )
    return label


def _prepare_tags(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
) -> tuple[list[list[str]], list[list[str]], set[str]]:
    """Check shapes and tags; return plain lists (seqeval needs lists) and the labels seen."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents, pred has {len(pred)}")
    gold_docs = [[str(t) for t in doc] for doc in gold]
    pred_docs = [[str(t) for t in doc] for doc in pred]
    for i, (g, p) in enumerate(zip(gold_docs, pred_docs, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"document {i}: gold has {len(g)} tags, pred has {len(p)}")
    labels: set[str] = set()
    for side, docs in (("gold", gold_docs), ("pred", pred_docs)):
        for i, doc in enumerate(docs):
            for j, tag in enumerate(doc):
                label = _tag_label(tag, i, j, side)
                if label is not None:
                    labels.add(label)
    return gold_docs, pred_docs, labels


def _tag_entities(docs: list[list[str]], mode: Mode) -> set[_TagEntity]:
    if mode == "strict":
        return {
            (e.sent_id, e.tag, e.start, e.end)
            for doc_entities in Entities(docs, scheme=IOB2).entities
            for e in doc_entities
        }
    # One document at a time, so an entity can never run across a document boundary;
    # get_entities gives an inclusive end.
    return {
        (i, label, start, end + 1)
        for i, doc in enumerate(docs)
        for label, start, end in get_entities(doc)
    }


def _score_tag_docs(
    gold: list[list[str]], pred: list[list[str]], labels: set[str], mode: Mode
) -> ScoreSet:
    if mode not in ("strict", "default"):
        raise ValueError(f"mode must be 'strict' or 'default', not {mode!r}")
    gold_entities = _tag_entities(gold, mode)
    pred_entities = _tag_entities(pred, mode)
    return _score_set(
        labels,
        tp=Counter(e[1] for e in gold_entities & pred_entities),
        n_pred=Counter(e[1] for e in pred_entities),
        n_gold=Counter(e[1] for e in gold_entities),
    )


def score_tags(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: Mode
) -> ScoreSet:
    """Entity-level P/R/F1 over IOB2 tag sequences, one sequence per sentence or document.

    `mode="strict"` reads entities as seqeval does with `mode="strict", scheme=IOB2`;
    `mode="default"` as seqeval's default (conlleval-like) mode. An entity is correct when its
    document, token start, token end and label all match. Raises ValueError when the numbers of
    documents differ, naming the first document whose gold and pred lengths differ, or naming
    the first tag that is not `O`, `B-<label>` or `I-<label>`.
    """
    gold_docs, pred_docs, labels = _prepare_tags(gold, pred)
    return _score_tag_docs(gold_docs, pred_docs, labels, mode)


# ---------------------------------------------------------------------------------------------
# Character spans


def _span_keys(docs: Sequence[Sequence[Entity]], side: str) -> list[list[_SpanKey]]:
    keys: list[list[_SpanKey]] = []
    for i, doc in enumerate(docs):
        doc_keys = []
        for e in doc:
            start, end = int(e.start), int(e.end)
            if not 0 <= start <= end:
                raise ValueError(f"{side} document {i}: bad entity offsets ({start}, {end})")
            doc_keys.append((i, start, end, str(e.label)))
        keys.append(doc_keys)
    return keys


def _label_counts(keys: Iterable[_SpanKey]) -> Counter[str]:
    return Counter(k[3] for k in keys)


def _overlaps(a: _SpanKey, b: _SpanKey) -> bool:
    # At least one shared character; a zero-length span overlaps nothing.
    return min(a[2], b[2]) - max(a[1], b[1]) >= 1


def _exact(gold: list[list[_SpanKey]], pred: list[list[_SpanKey]], labels: set[str]) -> ScoreSet:
    gold_all = Counter(k for doc in gold for k in doc)
    pred_all = Counter(k for doc in pred for k in doc)
    # Multiset intersection: each gold is matched at most once, so a duplicated
    # prediction is a false positive.
    matched = gold_all & pred_all
    tp: Counter[str] = Counter()
    for key, n in matched.items():
        tp[key[3]] += n
    n_pred = _label_counts(pred_all.elements())
    return _score_set(labels, tp, n_pred, _label_counts(gold_all.elements()))


def _hits(spans: list[_SpanKey], others: list[_SpanKey]) -> Counter[str]:
    """Per label, how many of `spans` overlap a same-label span of `others` (one document)."""
    by_label: dict[str, list[_SpanKey]] = defaultdict(list)
    for o in others:
        by_label[o[3]].append(o)
    return Counter(s[3] for s in spans if any(_overlaps(s, o) for o in by_label[s[3]]))


def _partial(gold: list[list[_SpanKey]], pred: list[list[_SpanKey]], labels: set[str]) -> ScoreSet:
    correct_pred: Counter[str] = Counter()
    hit_gold: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        correct_pred += _hits(p, g)
        hit_gold += _hits(g, p)
    n_pred = _label_counts(k for doc in pred for k in doc)
    n_gold = _label_counts(k for doc in gold for k in doc)

    def prf(correct: int, hit: int, np_: int, ng: int) -> PRF:
        p, r = _ratio(correct, np_), _ratio(hit, ng)
        return PRF(precision=p, recall=r, f1=_harmonic(p, r), tp=correct, n_pred=np_, n_gold=ng)

    per_type = {
        label: prf(correct_pred[label], hit_gold[label], n_pred[label], n_gold[label])
        for label in sorted(labels)
    }
    overall = prf(*(sum(c.values()) for c in (correct_pred, hit_gold, n_pred, n_gold)))
    return ScoreSet(overall=overall, per_type=per_type)


def score_spans(
    gold: Sequence[Sequence[Entity]], pred: Sequence[Sequence[Entity]], partial: bool = False
) -> ScoreSet:
    """P/R/F1 over character-offset entities, one entity list per document.

    Exact (`partial=False`): a prediction is correct when a gold of the same document has the
    same (start, end, label); each gold is matched at most once, so a duplicated prediction is
    a false positive (and two identical golds need two identical predictions).

    Partial (`partial=True`): a prediction is correct when it overlaps (by one character or
    more) a gold of the same label in the same document. Precision = correct predictions /
    predictions; recall = golds overlapped by a same-label prediction / golds; F1 is their
    harmonic mean; `tp` reports the correct predictions, so here recall is *not* tp / n_gold
    (one long prediction over two golds gives tp=1, recall 2/2). Matching is not one-to-one, so
    duplicated predictions are not penalized.

    Only `start`, `end` and `label` are used: a discontinuous entity is scored by its covering
    span. Raises ValueError when the numbers of documents differ or an entity has
    start > end or a negative start.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents, pred has {len(pred)}")
    gold_keys = _span_keys(gold, "gold")
    pred_keys = _span_keys(pred, "pred")
    labels = {k[3] for doc in gold_keys + pred_keys for k in doc}
    return (_partial if partial else _exact)(gold_keys, pred_keys, labels)


def score(
    gold_tags: Sequence[Sequence[str]],
    pred_tags: Sequence[Sequence[str]],
    gold_entities: Sequence[Sequence[Entity]] | None = None,
    pred_entities: Sequence[Sequence[Entity]] | None = None,
) -> Scores:
    """Every score at once: seqeval strict and default over the tags and, when both entity
    lists are given (one per document, aligned with the tag sequences), span exact and
    partial. Raises ValueError when only one entity list is given or the document counts
    disagree (see `score_tags` and `score_spans` for the rest)."""
    if (gold_entities is None) != (pred_entities is None):
        raise ValueError("give both gold_entities and pred_entities, or neither")
    gold_docs, pred_docs, labels = _prepare_tags(gold_tags, pred_tags)
    strict = _score_tag_docs(gold_docs, pred_docs, labels, "strict")
    default = _score_tag_docs(gold_docs, pred_docs, labels, "default")
    exact = partial = None
    if gold_entities is not None and pred_entities is not None:
        if len(gold_entities) != len(gold_docs):
            raise ValueError(
                f"{len(gold_docs)} tag sequences but {len(gold_entities)} entity lists"
            )
        exact = score_spans(gold_entities, pred_entities)
        partial = score_spans(gold_entities, pred_entities, partial=True)
    return Scores(
        seqeval_strict=strict,
        seqeval_default=default,
        span_exact=exact,
        span_partial=partial,
        n_docs=len(gold_docs),
    )


def score_documents(
    gold: Sequence[Document],
    pred: Sequence[Sequence[Entity]],
    labels: Iterable[str] | None = None,
) -> Scores:
    """Every score of character-offset predictions against gold documents: both sides are
    tagged on the document's own tokenization (the corpus's, else
    `alignment.default_tokenize`), so an annotator or a dictionary is scored exactly as the
    model's tags are. With `labels`, gold of other types is left out, as evaluate leaves out
    gold of a type the model lacks."""
    from raysynth.alignment import default_tokenize, entities_to_tags

    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents, pred has {len(pred)}")
    wanted = set(labels) if labels is not None else None
    gold_tags, pred_tags, gold_entities = [], [], []
    for doc, entities in zip(gold, pred, strict=True):
        spans = doc.token_spans or default_tokenize(doc.text)
        kept = [e for e in doc.entities if wanted is None or e.label in wanted]
        gold_tags.append(entities_to_tags(kept, spans)[0])
        pred_tags.append(entities_to_tags(list(entities), spans)[0])
        gold_entities.append(kept)
    return score(gold_tags, pred_tags, gold_entities, [list(p) for p in pred])
