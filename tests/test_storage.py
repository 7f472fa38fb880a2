"""Run storage at a URI: the mirror uploads only what changed, a new working copy fetches the
run back, and the folders workers write straight to the URI are never mirrored. Run against
pyarrow's local filesystem (file://) and a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from raysynth.config import RunConfig
from raysynth.errors import ConfigError
from raysynth.experiment.config import load_grid
from raysynth.storage import RunStorage, clear, fetch


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port; pyarrow finds it through the standard AWS
    variables (set here, and restored after the module)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="raysynth")
    yield
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(params=["file", "s3"])
def storage_uri(request, tmp_path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")
        return f"s3://raysynth/{uuid.uuid4().hex}"
    return f"file://{tmp_path}/remote"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _remote_files(uri: str) -> dict[str, int]:
    fs, base = pafs.FileSystem.from_uri(uri)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path[len(base) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}


def test_push_uploads_only_changes_and_pull_restores_the_run(storage_uri, tmp_path):
    first = RunStorage.open(storage_uri, "r1", tmp_path / "work-a")
    first.pull()  # nothing there yet
    _write(first.local / "manifest.json", "{}")
    _write(first.local / "generate" / "notes" / "shard-00000.parquet", "x" * 10)
    _write(first.local / "generate" / "notes" / ".shard-00001.parquet.abc.tmp", "partial")
    _write(first.local / "llm-cache" / "ab" / "ab12.json", "{}")  # lives at the URI only
    assert first.push() == 2
    assert first.push() == 0  # nothing changed
    _write(first.local / "manifest.json", '{"stages": []}')
    assert first.push() == 1
    assert _remote_files(first.remote) == {
        "manifest.json": 14,
        "generate/notes/shard-00000.parquet": 10,
    }

    second = RunStorage.open(storage_uri, "r1", tmp_path / "work-b")
    assert second.pull() == 2
    assert (second.local / "manifest.json").read_text() == '{"stages": []}'
    assert second.pull() == 0  # already there
    assert second.push() == 0  # what was fetched is not sent back


def test_shared_maps_the_working_copy_to_the_uri(storage_uri, tmp_path):
    storage = RunStorage.open(storage_uri, "r2", tmp_path / "work")
    assert storage.shared(storage.local / "llm-cache") == f"{storage_uri}/r2/llm-cache"
    outside = tmp_path / "models" / "bert"
    assert storage.shared(outside) == str(outside)  # not part of the run: unchanged
    local = RunStorage.open(str(tmp_path / "runs"), "r2", tmp_path / "unused")
    assert local.remote is None and local.shared(local.local / "x") == str(local.local / "x")


def test_fetch_and_clear_a_folder_at_the_uri(storage_uri, tmp_path):
    storage = RunStorage.open(storage_uri, "r3", tmp_path / "work")
    _write(storage.local / "model" / "config.json", "{}")
    storage.push()
    copy = fetch(storage.shared(storage.local / "model"))
    assert (copy / "config.json").read_text() == "{}"
    clear(f"{storage.remote}/model")
    assert _remote_files(storage.remote) == {}


def test_storage_settings_are_checked(tmp_path):
    config = RunConfig(name="r", storage="s3://bucket/runs", work_dir=tmp_path / "wc")
    assert config.run_dir == tmp_path / "wc" / "r"
    assert RunConfig(name="r", storage=tmp_path).run_dir == tmp_path / "r"
    with pytest.raises(ConfigError, match="storage: cannot open nosuch://x/r"):
        RunStorage.open("nosuch://x", "r", tmp_path).pull()
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: g\nstorage: s3://bucket/exp\nsizes: [2]\nbase: {name: b, test_sets: []}\n"
    )
    with pytest.raises(ConfigError, match="experiments write to a local or mounted folder"):
        load_grid(grid)
