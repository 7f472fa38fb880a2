"""Building blocks every config section shares: strictness, corpus references, path rules,
and error messages that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Strict(BaseModel):
    """Base of every config model: an unknown field is an error, since a typo must not be
    silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusRef(Strict):
    """A corpus on disk, in any format `raysynth convert` reads."""

    path: Path = Field(
        description="Corpus file or folder; relative paths are resolved against the config "
        "file's folder."
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


def resolve_path(base: Path, path: Path) -> Path:
    """`path` relative to `base`, unless it is absolute or a URI (s3://, gs://, ...)."""
    return path if path.is_absolute() or "://" in str(path) else (base / path).resolve()


def read_yaml_mapping(path: Path, what: str) -> dict:
    """The mapping a YAML `what` file (config, grid, recipe) holds; errors name the file."""
    import yaml

    from raysynth.errors import ConfigError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the {what} must be a mapping of fields")
    return raw


def describe(err: ValidationError) -> str:
    """One line per problem, each naming the field by its dotted path."""
    problems = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)
