"""Where a run's files live: a local folder, or any filesystem pyarrow reads (s3://, gs://,
abfs://, hdfs://, file://).

With a URI, the driver works in a local copy of the run directory and mirrors it to the
URI after every shard and every stage; a rerun, on this machine or any other, first fetches
what the URI holds, so it resumes where the last driver stopped. The parts that workers on
other nodes read or write go to the URI directly: the input shards the stages stream, the
LLM response cache, Ray Train's checkpoints, the model evaluation loads and the predictions
it writes (`shared`).

Hand-written because pyarrow's `copy_files` copies whole trees every time, and the mirror
must upload only what changed since the last call (it runs after every shard).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from raysynth.errors import ConfigError

# Folders that live only at the URI (written there by workers on any node), never mirrored.
REMOTE_ONLY = ("llm-cache", "checkpoints", "predictions")


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


@dataclass
class RunStorage:
    """A run directory: `local` is where the driver reads and writes; `remote`, when set, is
    the URI that holds the run (the local folder is then only a working copy)."""

    local: Path
    remote: str | None = None
    _pushed: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, storage: str, name: str, work_dir: Path) -> RunStorage:
        if not is_uri(storage):
            return cls(Path(storage).resolve() / name)
        return cls(Path(work_dir).expanduser().resolve() / name, f"{storage.rstrip('/')}/{name}")

    def shared(self, path: Path) -> str:
        """`path` as every node of the cluster reaches it: its URI when it is inside the
        local copy of a run stored at a URI, else itself."""
        if self.remote is None or not Path(path).is_relative_to(self.local):
            return str(path)
        return f"{self.remote}/{Path(path).relative_to(self.local).as_posix()}"

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        try:
            return pafs.FileSystem.from_uri(self.remote)
        except (pa.ArrowInvalid, OSError, ValueError) as err:  # unknown scheme, no bucket
            raise ConfigError(f"storage: cannot open {self.remote}: {err}") from None

    def pull(self) -> int:
        """Fetch every file the URI holds that the local copy lacks or holds at another size;
        returns how many were fetched."""
        self.local.mkdir(parents=True, exist_ok=True)
        if self.remote is None:
            return 0
        fs, base = self._fs()
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        fetched = 0
        for info in fs.get_file_info(selector):
            rel = info.path[len(base) :].lstrip("/")
            if info.type != pafs.FileType.File or rel.split("/", 1)[0] in REMOTE_ONLY:
                continue
            target = self.local / rel
            if not (target.is_file() and target.stat().st_size == info.size):
                target.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(info.path, str(target), source_filesystem=fs,
                                destination_filesystem=pafs.LocalFileSystem())  # fmt: skip
                fetched += 1
            self._pushed[rel] = _stamp(target)
        return fetched

    def push(self) -> int:
        """Upload every local file new or changed since the last pull or push; returns how
        many were uploaded."""
        if self.remote is None:
            return 0
        fs, base = self._fs()
        uploaded = 0
        for path in sorted(self._local_files()):
            rel = path.relative_to(self.local).as_posix()
            stamp = _stamp(path)
            if self._pushed.get(rel) == stamp:
                continue
            fs.create_dir(f"{base}/{rel}".rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(str(path), f"{base}/{rel}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)  # fmt: skip
            self._pushed[rel] = stamp
            uploaded += 1
        return uploaded

    def _local_files(self) -> list[Path]:
        files = []
        for root, dirs, names in os.walk(self.local):
            if Path(root) == self.local:
                dirs[:] = [d for d in dirs if d not in REMOTE_ONLY]
            # Temporary files of atomic writes in progress are not part of the run.
            files += [Path(root) / n for n in names if not n.endswith(".tmp")]
        return files


def clear(location: str) -> None:
    """Delete the folder at `location` (a path or URI) if it exists."""
    if not is_uri(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    fs, path = pafs.FileSystem.from_uri(location)
    fs.delete_dir_contents(path, missing_dir_ok=True)


def fetch(location: str) -> Path:
    """The folder at `location` as a local folder: itself, or for a URI a copy in a new
    temporary folder (transformers loads models from local folders only)."""
    if not is_uri(location):
        return Path(location)
    into = tempfile.mkdtemp(prefix="raysynth-")
    pafs.copy_files(location, into, destination_filesystem=pafs.LocalFileSystem())
    return Path(into)


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
