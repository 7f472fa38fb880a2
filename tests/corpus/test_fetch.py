"""`raysynth data fetch` against a real HTTP server on 127.0.0.1 standing in for the official
homes (through RAYSYNTH_DATA_MIRROR or --mirror): digests checked or recorded, archives
unpacked, the printed test_sets entry usable as is, and nothing left behind by a failure."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from raysynth.cli import main
from raysynth.corpus import fetch as fetch_module
from raysynth.corpus import parse_label_map, read_documents

TITLE, ABSTRACT = "Gout in adults.", "We saw gout and asthma."
TEXT = f"{TITLE} {ABSTRACT}"


def pubtator(pmid: str, label: str) -> str:
    """One PubTator document mentioning gout twice and asthma once."""
    lines = [f"{pmid}|t|{TITLE}", f"{pmid}|a|{ABSTRACT}"]
    for word, start in (("Gout", 0), ("gout", TEXT.index("gout")), ("asthma", TEXT.index("ast"))):
        lines.append(f"{pmid}\t{start}\t{start + len(word)}\t{word}\t{label}\tD000001")
    return "\n".join(lines) + "\n\n"


def write_zip(path: Path, members: dict[str, str]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on a free loopback port serving the folder it yields."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/corpora", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def ncbi_archives(mirror) -> dict[str, str]:
    """Stand-ins for NCBI's three zips (one document each); their digests by file name."""
    _, root = mirror
    (root / "corpora").mkdir()
    corpus = fetch_module.CORPORA["ncbi-disease"]
    digests = {}
    for archive, member in zip(corpus.archives, corpus.splits.values(), strict=True):
        digests[archive.name] = write_zip(
            root / "corpora" / archive.name, {member: pubtator("1", "SpecificDisease")}
        )
    return digests


def test_fetch_verifies_unpacks_and_prints_a_usable_test_set(
    mirror, ncbi_archives, tmp_path, monkeypatch, capsys
):
    url, _ = mirror
    corpus = fetch_module.CORPORA["ncbi-disease"]
    pinned = tuple(dataclasses.replace(a, sha256=ncbi_archives[a.name]) for a in corpus.archives)
    monkeypatch.setitem(
        fetch_module.CORPORA, "ncbi-disease", dataclasses.replace(corpus, archives=pinned)
    )
    out = tmp_path / "data" / "ncbi"

    assert main(["data", "fetch", "ncbi-disease", "--out", str(out), "--mirror", url]) == 0
    printed = capsys.readouterr().out
    assert printed.count("(verified)") == 3
    assert sorted(p.name for p in out.iterdir()) == sorted([*corpus.splits.values(), "SOURCE.json"])
    recorded = json.loads((out / "SOURCE.json").read_text())["archives"]
    assert {name: a["sha256"] for name, a in recorded.items()} == ncbi_archives

    entry = yaml.safe_load(printed[printed.index("test_sets:") :])["test_sets"][0]
    assert entry["format"] == "pubtator" and entry["label_map"] == "ncbi-disease"
    (doc,) = read_documents(
        entry["path"], entry["format"], label_map=parse_label_map(entry["label_map"])
    )
    assert [TEXT[e.start : e.end] for e in doc.entities] == ["Gout", "gout", "asthma"]
    assert {e.label for e in doc.entities} == {"Disease"}

    assert main(["data", "fetch", "ncbi-disease", "--out", str(out), "--mirror", url]) == 0
    assert "already in" in capsys.readouterr().out


def test_checksum_mismatch_fails_clearly_and_leaves_nothing(
    mirror, ncbi_archives, tmp_path, capsys
):
    url, _ = mirror  # the stand-ins cannot match the real corpus's pinned digests
    out = tmp_path / "data" / "ncbi"

    assert main(["data", "fetch", "ncbi-disease", "--out", str(out), "--mirror", url]) == 2
    error = capsys.readouterr().err
    expected = fetch_module.CORPORA["ncbi-disease"].archives[0].sha256
    assert f"NCBItrainset_corpus.zip: SHA-256 {ncbi_archives['NCBItrainset_corpus.zip']}" in error
    assert f"does not match the expected {expected}" in error
    assert "nothing was written" in error and "Traceback" not in error
    assert not out.exists()
    assert list((tmp_path / "data").iterdir()) == []  # no staging folder either


def test_unpublished_digest_is_recorded_and_mirror_comes_from_the_environment(
    mirror, tmp_path, monkeypatch, capsys
):
    url, root = mirror
    (root / "corpora").mkdir()
    splits = fetch_module.CORPORA["bc5cdr"].splits
    digest = write_zip(
        root / "corpora" / "CDR_Data.zip",
        {path: pubtator(str(i), "Disease") for i, path in enumerate(splits.values())},
    )
    monkeypatch.setenv(fetch_module.MIRROR_ENV, url)
    out = tmp_path / "bc5cdr"

    assert main(["data", "fetch", "bc5cdr", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"CDR_Data.zip: sha256 {digest} (no published digest; recorded in SOURCE.json)" in (
        printed
    )
    recorded = json.loads((out / "SOURCE.json").read_text())["archives"]["CDR_Data.zip"]
    assert recorded == {"url": f"{url}/CDR_Data.zip", "sha256": digest, "verified": False}
    assert f"path: {out / splits['test']}" in printed and "label_map" not in printed
    assert not (out / "CDR_Data.zip").exists()


def test_missing_archive_and_unsafe_archive_are_errors(mirror, tmp_path, capsys):
    url, root = mirror
    (root / "corpora").mkdir()
    out = tmp_path / "bc5cdr"
    assert main(["data", "fetch", "bc5cdr", "--out", str(out), "--mirror", url]) == 2
    assert "CDR_Data.zip: download failed (HTTP Error 404" in capsys.readouterr().err

    write_zip(root / "corpora" / "CDR_Data.zip", {"../escape.txt": "x"})
    assert main(["data", "fetch", "bc5cdr", "--out", str(out), "--mirror", url]) == 2
    assert "unsafe member path '../escape.txt'" in capsys.readouterr().err
    assert not (tmp_path / "escape.txt").exists() and not out.exists()


def test_refuses_to_mix_into_a_folder_holding_something_else(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["data", "fetch", "bc5cdr", "--out", str(out), "--mirror", "http://x"]) == 2
    assert "is not a complete bc5cdr download" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
