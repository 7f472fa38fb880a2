"""`raysynth data fetch`: the public NCBI-disease and BC5CDR corpora from their official homes,
for users without a copy of ../shared/data.

Every archive is checked against its SHA-256 where one is known; where none is, the digest
of what was downloaded is recorded in `SOURCE.json` and printed, so a later download can be
compared with it. Everything is downloaded and unpacked in a temporary folder beside the
destination, which is renamed into place only when every archive passed: a failed or
interrupted fetch leaves nothing behind that could pass for a corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from raysynth.errors import RaysynthError

MIRROR_ENV = "RAYSYNTH_DATA_MIRROR"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


class FetchError(RaysynthError):
    """A corpus could not be downloaded, verified or unpacked."""


@dataclass(frozen=True)
class Archive:
    """One file to download. `sha256` is None when no digest has been published."""

    url: str
    sha256: str | None

    @property
    def name(self) -> str:
        return PurePosixPath(self.url).name


@dataclass(frozen=True)
class Corpus:
    """A public corpus: where it lives, what to download, and the PubTator file of each split
    (relative to the destination folder) that a run config's `test_sets` can point at."""

    key: str
    home: str
    archives: tuple[Archive, ...]
    splits: dict[str, str]
    label_map: str | None = None
    labels: str = ""


NCBI_HOME = "https://www.ncbi.nlm.nih.gov/CBBresearch/Dogan/DISEASE/"
CDR_HOME = "https://biocreative.bioinformatics.udel.edu/tasks/biocreative-v/track-3-cdr/"

# NCBI digests: as pinned by the nlstruct project, which downloads these same URLs through a
# SHA-256-checked fetcher. BC5CDR publishes none; its digest is recorded on first download.
CORPORA: dict[str, Corpus] = {
    "ncbi-disease": Corpus(
        key="ncbi-disease",
        home=NCBI_HOME,
        archives=(
            Archive(
                NCBI_HOME + "NCBItrainset_corpus.zip",
                "26157233d70aeda0b2ac1dda4fc9369b0717bd888f5afe511d0c1c6a5ad307a0",
            ),
            Archive(
                NCBI_HOME + "NCBIdevelopset_corpus.zip",
                "61681ad09356619c8f4f3e1738663dd007ad0135720fdc90195120fea944cbe9",
            ),
            Archive(
                NCBI_HOME + "NCBItestset_corpus.zip",
                "b978442f39c739deb6619c70e7b07327d9eb1b71aff64996c02a592435583f46",
            ),
        ),
        splits={
            "train": "NCBItrainset_corpus.txt",
            "dev": "NCBIdevelopset_corpus.txt",
            "test": "NCBItestset_corpus.txt",
        },
        label_map="ncbi-disease",
        labels="Disease (four fine types, mapped to Disease by the ncbi-disease label map)",
    ),
    "bc5cdr": Corpus(
        key="bc5cdr",
        home=CDR_HOME,
        archives=(
            Archive(
                "https://biocreative.bioinformatics.udel.edu/media/store/files/2016/CDR_Data.zip",
                None,
            ),
        ),
        splits={
            split: f"CDR_Data/CDR.Corpus.v010516/CDR_{name}Set.PubTator.txt"
            for split, name in (("train", "Training"), ("dev", "Development"), ("test", "Test"))
        },
        labels="Chemical and Disease",
    ),
}


@dataclass
class FetchResult:
    """What a fetch did: the corpus folder, its split files, and the digest of each archive
    with whether it was checked against a known one."""

    corpus: Corpus
    out: Path
    skipped: bool = False
    digests: dict[str, dict[str, str | bool]] = field(default_factory=dict)

    def split_path(self, split: str) -> Path:
        return self.out / self.corpus.splits[split]


def fetch(key: str, out: str | Path, mirror: str | None = None) -> FetchResult:
    """Download, verify and unpack corpus `key` into `out`. `mirror` (default: the
    RAYSYNTH_DATA_MIRROR environment variable) replaces each archive's official location
    with `<mirror>/<file name>`; digests are checked all the same."""
    corpus = CORPORA.get(key)
    if corpus is None:
        raise FetchError(f"unknown corpus {key!r}; choose one of {', '.join(CORPORA)}")
    out = Path(out).absolute()
    result = FetchResult(corpus, out)
    if _complete(result):
        result.skipped = True
        return result
    if out.exists() and any(out.iterdir()):
        raise FetchError(
            f"{out} exists and is not a complete {key} download; remove it or choose another --out"
        )
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for archive in corpus.archives:
            result.digests[archive.name] = _download_and_unpack(archive, staging, mirror)
        missing = [p for p in corpus.splits.values() if not (staging / p).is_file()]
        if missing:
            raise FetchError(f"{key}: the archives lack {', '.join(missing)}")
        _write_source(staging / "SOURCE.json", corpus, result.digests)
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _complete(result: FetchResult) -> bool:
    return all(result.split_path(s).is_file() for s in result.corpus.splits)


def _download_and_unpack(
    archive: Archive, staging: Path, mirror: str | None
) -> dict[str, str | bool]:
    url = f"{mirror.rstrip('/')}/{archive.name}" if mirror else archive.url
    target = staging / archive.name
    digest = _download(url, target)
    if archive.sha256 is not None and digest != archive.sha256:
        raise FetchError(
            f"{archive.name}: SHA-256 {digest} does not match the expected {archive.sha256} "
            f"(downloaded from {url}); nothing was written. If the publisher re-released the "
            "file, check it and update the digest in raysynth/corpus/fetch.py."
        )
    _unzip(target, staging)
    target.unlink()
    return {"url": url, "sha256": digest, "verified": archive.sha256 is not None}


def _download(url: str, target: Path) -> str:
    """Stream `url` into `target`; the SHA-256 of the bytes received."""
    sha = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, target.open("wb") as f:
            while chunk := response.read(CHUNK_BYTES):
                sha.update(chunk)
                f.write(chunk)
    except (urllib.error.URLError, OSError) as err:
        raise FetchError(f"{url}: download failed ({err})") from None
    return sha.hexdigest()


def _unzip(path: Path, into: Path) -> None:
    """Extract a zip, refusing members that would land outside `into` (absolute paths or
    `..`), since an archive from the network decides its own member names."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                member = PurePosixPath(name)
                if member.is_absolute() or ".." in member.parts:
                    raise FetchError(f"{path.name}: unsafe member path {name!r}")
            archive.extractall(into)
    except zipfile.BadZipFile:
        raise FetchError(f"{path.name}: not a zip archive") from None


def _write_source(path: Path, corpus: Corpus, digests: dict) -> None:
    source = {
        "corpus": corpus.key,
        "home": corpus.home,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "archives": digests,
    }
    path.write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def next_steps(result: FetchResult) -> str:
    """What to tell the user: the digests, and the `test_sets` entry to paste into a run
    config (format pubtator, with the label map the corpus needs)."""
    corpus = result.corpus
    if result.skipped:
        lines = [f"{corpus.key}: already in {result.out} (remove the folder to fetch again)"]
    else:
        lines = [f"{corpus.key}: {len(corpus.splits)} splits in {result.out} ({corpus.home})"]
        for name, d in result.digests.items():
            check = "verified" if d["verified"] else "no published digest; recorded in SOURCE.json"
            lines.append(f"  {name}: sha256 {d['sha256']} ({check})")
    lines += [
        f"labels: {corpus.labels}",
        "next: add the split to score on to a run config's test_sets, e.g.",
        "test_sets:",
        f"  - name: {corpus.key}-test",
        f"    path: {result.split_path('test')}",
        "    format: pubtator",
    ]
    if corpus.label_map:
        lines.append(f"    label_map: {corpus.label_map}")
    return "\n".join(lines)
