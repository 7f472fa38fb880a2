"""Test documents -> predictions: windows with stride over each text, a token-classification
model, and the one decoder of `raysynth.alignment` back to the test set's own tokens and to
character spans; with `evaluate.dictionary`, combined there with the lexicons' matches.

`Predictor` is a plain callable (model loaded once in `__init__`), run by Ray Data in an actor
pool and directly by tests. Input columns: `doc_id`, `text`, `entities` (gold), `tokens` and
`token_spans` (null: default tokenization). Output: the `predictions` table of
`raysynth.schema`, whose count columns say what of a document the tag-level scores could not
see: `unscored_gold` (gold of a type the model lacks), `unseen_words` (words no window
reached) and `gold_conflicts` (nested or overlapping gold spans, which one tag sequence cannot
hold; the span scores still use every gold span).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from raysynth.alignment import (
    default_tokenize,
    entities_to_tags,
    tags_to_entities,
    tokenize_windows,
    window_word_predictions,
)
from raysynth.documents import Document, Entity
from raysynth.evaluate.abbreviations import propagate_abbreviation_tags
from raysynth.evaluate.dictionary import DictionaryMode, combine
from raysynth.schema import PREDICTIONS
from raysynth.storage import fetch

# Subwords per forward pass, padding included: bounds memory on a very long document.
SUBWORDS_PER_FORWARD = 4096


def prediction_row(
    doc: Document,
    pred_tags: list[str],
    model_labels: set[str],
    unseen: int = 0,
    abbreviations: bool = False,
) -> dict[str, Any]:
    """One `predictions` row from a document (gold entities already mapped to the model's
    labels; `token_spans` set) and predicted tags on its words: shared by the model and the
    LLM baseline, so both are scored by the same code. `abbreviations`: see
    `EvaluateConfig.abbreviations`."""
    spans = doc.token_spans or []
    if abbreviations:
        pred_tags = propagate_abbreviation_tags(doc.text, pred_tags, spans)
    words = list(doc.tokens) if doc.tokens is not None else [doc.text[s:e] for s, e in spans]
    scored = [e for e in doc.entities if e.label in model_labels]
    gold_tags, aligned = entities_to_tags(scored, spans)
    pred_entities, _ = tags_to_entities(pred_tags, spans, doc.text)
    return {
        "doc_id": doc.doc_id,
        "text": doc.text,
        "gold": [e.to_row() for e in doc.entities],
        "pred": [e.to_row() for e in pred_entities],
        "tokens": words,
        "gold_tags": gold_tags,
        "pred_tags": pred_tags,
        "unscored_gold": len(doc.entities) - len(scored),
        "unseen_words": unseen,
        "gold_conflicts": aligned.conflicts,
    }


def length_sorted_chunks(lengths: list[int], budget: int) -> list[list[int]]:
    """Window indices grouped for forward passes, shortest first, each group's padded size
    (members x longest) within `budget`. A batch is padded to its longest window, so mixing
    10- and 128-subword windows would spend most of a pass on padding; sorting first is what
    makes a batch of short sentences cheap (a `transformers.pipeline` pads in input order)."""
    chunks: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        if chunks and (len(chunks[-1]) + 1) * lengths[index] <= budget:
            chunks[-1].append(index)
        else:
            chunks.append([index])
    return chunks


class Predictor:
    def __init__(
        self,
        model_path: str,
        max_length: int,
        stride: int,
        label_map: dict[str, str] | None = None,
        use_gpu: bool = False,
        abbreviations: bool = False,
        kb: Any = None,
        dictionary: DictionaryMode = "off",
    ) -> None:
        """`kb` (an `annotate.config.KnowledgeBase`) is read here, once per actor, when
        `dictionary` is not "off"."""
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        from raysynth.annotate.kb import DictionaryMatcher

        self.torch = torch
        self.device = torch.device("cuda" if use_gpu else "cpu")
        local = fetch(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(local)
        self.model = AutoModelForTokenClassification.from_pretrained(local)
        self.model.to(self.device).eval()
        self.id2label = {int(i): tag for i, tag in self.model.config.id2label.items()}
        self.model_labels = {tag.split("-", 1)[1] for tag in self.id2label.values() if "-" in tag}
        self.label_map = label_map or {}
        self.abbreviations = abbreviations
        self.dictionary = dictionary
        self.matcher = None
        if dictionary != "off":
            self.matcher = DictionaryMatcher.from_lexicons(kb.lexicons, kb.filters)
        self.max_length = max_length
        self.stride = stride

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        """A batch of documents -> an Arrow table with the `predictions` schema (a fixed
        schema, so every shard has the same types whatever a batch contains)."""
        texts = [str(t) for t in batch["text"]]
        windows = self._windows(texts)
        rows = [
            self._row(doc_id, text, gold, tokens, spans, windows[i])
            for i, (doc_id, text, gold, tokens, spans) in enumerate(
                zip(
                    batch["doc_id"],
                    texts,
                    batch["entities"],
                    batch["tokens"],
                    batch["token_spans"],
                    strict=True,
                )
            )
        ]
        return pa.Table.from_pylist(rows, schema=PREDICTIONS)

    def _windows(self, texts: list[str]) -> list[list[tuple[list, list[str], list[int]]]]:
        """Per document, its windows as (offsets, predicted subword tags, special mask)."""
        enc = tokenize_windows(self.tokenizer, texts, self.max_length, self.stride)
        ids = enc["input_ids"]
        tags: list[list[str]] = [[] for _ in ids]
        for chunk in length_sorted_chunks([len(w) for w in ids], SUBWORDS_PER_FORWARD):
            for w, window_tags in zip(chunk, self._predict([ids[w] for w in chunk]), strict=True):
                tags[w] = window_tags
        per_doc: list[list] = [[] for _ in texts]
        for w, doc in enumerate(enc["overflow_to_sample_mapping"]):
            per_doc[doc].append((enc["offset_mapping"][w], tags[w], enc["special_tokens_mask"][w]))
        return per_doc

    def _predict(self, ids: list[list[int]]) -> list[list[str]]:
        padded = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        with self.torch.inference_mode():
            logits = self.model(**{k: v.to(self.device) for k, v in padded.items()}).logits
        best = logits.argmax(-1).tolist()
        return [
            [self.id2label[i] for i in row[: len(seq)]] for row, seq in zip(best, ids, strict=True)
        ]

    def _row(self, doc_id, text, gold, tokens, spans, windows) -> dict[str, Any]:
        word_spans = [(int(s), int(e)) for s, e in spans] if spans is not None else None
        word_spans = word_spans if word_spans is not None else default_tokenize(text)
        gold_entities = [self._gold(e) for e in gold] if gold is not None else []
        pred_tags, unseen = window_word_predictions(windows, word_spans)
        if self.matcher is not None:
            pred_tags = self._with_dictionary(text, pred_tags, word_spans)
        doc = Document(str(doc_id), text, gold_entities, tokens, word_spans)
        return prediction_row(doc, pred_tags, self.model_labels, unseen, self.abbreviations)

    def _with_dictionary(
        self, text: str, pred_tags: list[str], word_spans: list[tuple[int, int]]
    ) -> list[str]:
        predicted, _ = tags_to_entities(pred_tags, word_spans, text)
        matches = [m for m in self.matcher.match(text) if m.label in self.model_labels]
        tags, _ = entities_to_tags(combine(predicted, matches, self.dictionary), word_spans)
        return tags

    def _gold(self, raw: Any) -> Entity:
        entity = raw if isinstance(raw, Entity) else Entity.from_row(raw)
        label = self.label_map.get(entity.label, entity.label)
        return Entity(entity.start, entity.end, label, entity.text, entity.source, entity.fragments)
