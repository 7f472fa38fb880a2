"""The run configuration: typed, validated when loaded, so a wrong field fails before any
work starts with a message that names it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raysynth.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestSet(_Strict):
    """A real, human-annotated corpus to evaluate on."""

    __test__ = False  # not a pytest test class, despite the name

    name: str = Field(description="Short name used in reports and output folders.")
    path: Path = Field(
        description="Corpus file or folder; relative paths are resolved "
        "against the config file's folder."
    )
    format: Literal["conll", "pubtator", "brat", "jsonl", "parquet"] | None = Field(
        default=None, description="Corpus format; guessed from the file name when omitted."
    )
    scheme: Literal["IOB1", "IOB2", "BIOES"] = Field(
        default="IOB2", description="Tag scheme of a CoNLL file."
    )
    label_map: str | None = Field(
        default=None,
        description="A preset (ncbi-disease) or FROM=TO,FROM=TO applied to the corpus labels.",
    )


class RunConfig(_Strict):
    """One run of the pipeline: where it writes and what it is scored on."""

    name: str = Field(
        description="Run name: the run directory is <storage>/<name>.", pattern=r"^[A-Za-z0-9._-]+$"
    )
    storage: Path = Field(default=Path("runs"), description="Folder holding run directories.")
    test_sets: list[TestSet] = Field(
        default_factory=list, description="Real test sets the trained model is scored on."
    )


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config; relative paths inside it are taken relative to the
    config file, so a config works from any working directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of fields")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {_describe(err)}") from None
    base = path.parent
    return config.model_copy(
        update={
            "test_sets": [
                t.model_copy(update={"path": _resolve(base, t.path)}) for t in config.test_sets
            ]
        }
    )


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() or "://" in str(path) else (base / path).resolve()


def _describe(err: ValidationError) -> str:
    """One line per problem, each naming the field by its dotted path."""
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)
