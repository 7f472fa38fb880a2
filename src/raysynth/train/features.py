"""Documents -> model windows: tokenization with offsets, labels by `raysynth.alignment`,
and windows with stride for notes longer than the model's length.

`Featurizer` is a plain callable (tokenizer loaded once in `__init__`, `__call__(batch)` does
the work) so Ray Data runs it in an actor pool and a test runs it without a cluster.
Input columns: `doc_id`, `text`, `entities`, `token_spans` (null: default tokenization).
Output columns, one row per window: `doc_id`, `window`, `input_ids`, `attention_mask`,
`labels`, and the alignment counts `conflicts`, `expanded`, `unaligned` (on a document's first
window only, so summing the column counts each document once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pyarrow as pa

from raysynth.alignment import (
    AlignmentReport,
    default_tokenize,
    entities_to_tags,
    subword_labels,
    tokenize_windows,
)
from raysynth.documents import Entity

COUNT_COLUMNS = ("conflicts", "expanded", "unaligned")


def label_list(labels: Sequence[str]) -> list[str]:
    """The model's tag set, sorted once: O first, then B-/I- per type. Written into the model
    config as id2label, so the checkpoint describes itself."""
    return ["O"] + [f"{prefix}-{label}" for label in sorted(labels) for prefix in ("B", "I")]


def token_classifier(model_path: str, tags: Sequence[str]) -> Any:
    """A token-classification model from a backbone folder with a fresh head over `tags`
    (`label_list`), replacing any head the folder had."""
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        model_path,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id={tag: i for i, tag in enumerate(tags)},
        ignore_mismatched_sizes=True,
    )


class Featurizer:
    def __init__(
        self,
        model_path: str,
        labels: Sequence[str],
        label_map: dict[str, str],
        max_length: int,
        stride: int,
        mode: Literal["first", "all"] = "first",
    ) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.label2id = {tag: i for i, tag in enumerate(label_list(labels))}
        self.label_map = label_map
        self.max_length = max_length
        self.stride = stride
        self.mode = mode

    def __call__(self, batch: pa.Table) -> dict[str, list]:
        """A pyarrow batch, read as Python rows: a numpy batch would turn an all-null column
        (annotations have no token_spans) into NaN floats."""
        out: dict[str, list] = {
            k: []
            for k in ("doc_id", "window", "input_ids", "attention_mask", "labels", *COUNT_COLUMNS)
        }
        columns = batch.select(["doc_id", "text", "entities", "token_spans"]).to_pydict()
        for doc_id, text, entities, spans in zip(*columns.values(), strict=True):
            for i, (window, report) in enumerate(self.windows(text, entities, spans)):
                out["doc_id"].append(doc_id)
                out["window"].append(i)
                for key in ("input_ids", "attention_mask", "labels"):
                    out[key].append(window[key])
                counts = report.to_dict() if i == 0 else {}
                for key in COUNT_COLUMNS:
                    out[key].append(counts.get(key, 0))
        return out

    def windows(
        self, text: str, entities: Sequence[Any] | None, spans: Sequence[Any] | None
    ) -> list[tuple[dict[str, list[int]], AlignmentReport]]:
        """One document's windows, each with input ids and one label id per subword."""
        word_spans = [(int(s), int(e)) for s, e in spans] if spans is not None else None
        word_spans = word_spans or default_tokenize(text)
        ents = [self._entity(e) for e in entities if e is not None] if entities is not None else []
        tags, report = entities_to_tags(ents, word_spans)
        enc = tokenize_windows(self.tokenizer, text, self.max_length, self.stride)
        result = []
        for ids, mask, offsets, special in zip(
            enc["input_ids"],
            enc["attention_mask"],
            enc["offset_mapping"],
            enc["special_tokens_mask"],
            strict=True,
        ):
            labels = subword_labels(offsets, word_spans, tags, self.label2id, self.mode, special)
            result.append(({"input_ids": ids, "attention_mask": mask, "labels": labels}, report))
        return result

    def _entity(self, raw: Any) -> Entity:
        entity = raw if isinstance(raw, Entity) else Entity.from_row(raw)
        label = self.label_map.get(entity.label, entity.label)
        return Entity(entity.start, entity.end, label)
