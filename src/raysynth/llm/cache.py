"""Response cache: a rerun never pays twice for the same call.

One small JSON file per response, named by the sha256 of (endpoint, model, request), under a
folder of the run's storage. pyarrow's filesystem layer resolves the folder, so the same code
writes to local disk on a laptop and to object storage (s3://, gs://) on a cluster, and every
actor on every node sees the same entries. Only successful responses are stored; a file that
cannot be read back (a write cut short) counts as a miss and is overwritten.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs


def cache_key(endpoint: str, model: str, request: dict[str, Any]) -> str:
    """sha256 over a canonical JSON of what determines the answer. The API key is not part
    of it: the same request to the same endpoint has the same answer whoever pays."""
    canonical = json.dumps(
        {"endpoint": endpoint, "model": model, "request": request},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Get and put cached responses under `root` (a local path or any pyarrow URI)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        if "://" in self.root:
            self._fs, self._base = pafs.FileSystem.from_uri(self.root)
        else:
            self._fs, self._base = pafs.LocalFileSystem(), str(Path(self.root).resolve())
        self._fs.create_dir(self._base, recursive=True)

    def _path(self, key: str) -> str:
        # Two-level fan-out keeps folders small on file systems that dislike huge ones.
        return f"{self._base}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            with self._fs.open_input_stream(self._path(key)) as stream:
                return json.loads(stream.read().decode("utf-8"))
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        path = self._path(key)
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with self._fs.open_output_stream(path) as stream:
            stream.write(json.dumps(value, ensure_ascii=False).encode("utf-8"))
