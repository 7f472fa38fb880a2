"""What prompt building needs besides the note: the example pool (and its embeddings) and
the dictionary, each loaded once per actor and only when a strategy or the merge uses it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from raysynth.annotate.config import AnnotateConfig, Strategy
from raysynth.documents import Document, Entity

if TYPE_CHECKING:
    from raysynth.annotate.kb import DictionaryMatcher
    from raysynth.annotate.knn import Embedder, ExamplePool


@dataclass
class Resources:
    matcher: DictionaryMatcher | None = None
    pool: ExamplePool | None = None
    embedder: Embedder | None = None

    @classmethod
    def load(cls, config: AnnotateConfig, prompts: bool = True) -> Resources:
        """`prompts` False: the dictionary alone, for an annotator that asks no LLM (the
        example pool and its embeddings serve prompts only)."""
        out = cls()
        if config.kb is not None:
            from raysynth.annotate.kb import DictionaryMatcher

            out.matcher = DictionaryMatcher.from_lexicons(config.kb.lexicons, config.kb.filters)
        shots = {s.shots for s in config.strategies} if prompts else set()
        if shots - {"zero"}:
            from raysynth.annotate.knn import Embedder, ExamplePool, load_examples

            docs = load_examples(
                config.examples, list(config.labels), config.examples_limit, config.seed
            )
            if "knn" in shots:
                out.embedder = Embedder()
                out.pool = ExamplePool.build(docs, out.embedder)
            else:  # fixed examples need no embeddings
                out.pool = ExamplePool(docs, np.zeros((len(docs), 0), dtype=np.float32))
        return out

    def kb_entities(self, text: str) -> list[Entity]:
        return self.matcher.match(text) if self.matcher is not None and text else []

    def embed(self, texts: Sequence[str]) -> np.ndarray | None:
        """The notes' embeddings when a kNN strategy needs them: computed once per batch and
        shared by every kNN strategy."""
        return self.embedder.encode(list(texts)) if self.embedder is not None else None

    def examples(
        self, strategy: Strategy, texts: Sequence[str], vectors: np.ndarray | None
    ) -> list[list[Document]]:
        """The in-context examples of each text, in prompt order (most similar last);
        `vectors` are the texts' embeddings (`embed`), used by kNN."""
        if strategy.shots == "zero":
            return [[] for _ in texts]
        if strategy.shots == "fixed":
            return [self.pool.fixed(strategy.k)] * len(texts)
        return self.pool.select(vectors, strategy.k, list(texts))
