"""The exception types raysynth raises, in one place.

Messages name the file, line, field or id a user must look at, and never contain note text:
a message may end up in a shared log, and note text may be patient text.
"""

from __future__ import annotations

from pathlib import Path


class RaysynthError(Exception):
    """Base class: every error raysynth raises on purpose is one of these."""


class ConfigError(RaysynthError):
    """A configuration value is missing, of the wrong type or inconsistent."""


class CorpusFormatError(RaysynthError):
    """A corpus file cannot be read; names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class AlignmentError(RaysynthError):
    """Spans, tokens and tags disagree in a way no policy can resolve."""
