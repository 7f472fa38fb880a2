"""What reading a corpus found: counts that reconcile, and warnings that never pass silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from raysynth.documents import Document

MAX_EXAMPLES = 20


@dataclass
class ReadReport:
    """Counts of what a reader produced and of every problem it repaired or tolerated.

    A reader either raises `CorpusFormatError` (the row cannot be kept) or keeps the row and
    calls `warn`, so `documents` plus the raised error account for every row of the input.
    """

    documents: int = 0
    tokens: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def count(self, doc: Document) -> None:
        self.documents += 1
        self.tokens += len(doc.tokens or ())
        self.entities.update(e.label for e in doc.entities)

    def warn(self, kind: str, path: str | Path, line: int | None, detail: str) -> None:
        """Count a tolerated problem; the first few are kept with their file and line."""
        self.warnings[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            where = f"{path}:{line}" if line is not None else str(path)
            self.examples.append(f"{where}: {kind}: {detail}")

    def to_dict(self) -> dict:
        return {
            "documents": self.documents,
            "tokens": self.tokens,
            "entities": dict(sorted(self.entities.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "examples": list(self.examples),
        }

    def summary(self) -> str:
        ents = ", ".join(f"{k}={v}" for k, v in sorted(self.entities.items())) or "none"
        text = f"{self.documents} documents, {self.tokens} tokens, entities: {ents}"
        if self.warnings:
            warned = ", ".join(f"{k}={v}" for k, v in sorted(self.warnings.items()))
            text += f"\nwarnings: {warned}\n" + "\n".join(f"  {e}" for e in self.examples)
        return text
