"""Line-by-line reading that names the file and line of any decoding problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from raysynth.errors import CorpusFormatError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line without its newline), streaming, decoding UTF-8 per line so
    an invalid byte is reported with the line it sits on. An empty file is an error: it is
    almost always a failed copy, and silently reading zero documents would hide that."""
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(path, "no such file")
    empty = True
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            empty = False
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CorpusFormatError(
                    path,
                    f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    "convert the file to UTF-8",
                    number,
                ) from None
            yield number, line.rstrip("\r\n")
    if empty:
        raise CorpusFormatError(path, "file is empty")


def read_text(path: str | Path) -> str:
    """A whole file as text (for BRAT, whose offsets index the raw file), with the same
    UTF-8 and empty-file checks as `read_lines`."""
    path = Path(path)
    if not path.is_file():
        raise CorpusFormatError(path, "no such file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CorpusFormatError(path, "not valid UTF-8; convert the file to UTF-8", line) from None
