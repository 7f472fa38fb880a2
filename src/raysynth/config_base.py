"""Building blocks every config section shares: strictness, corpus references, path rules,
and error messages that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError


class Strict(BaseModel):
    """Base of every config model: an unknown field is an error, since a typo must not be
    silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def location(value: object) -> Path | str:
    # pathlib folds "s3://bucket" into "s3:/bucket": URIs stay strings.
    text = str(value)
    return text if "://" in text else Path(text)


# A local path, or a URI of any filesystem pyarrow reads (s3://, gs://, ...).
Location = Annotated[Path | str, PlainValidator(location), PlainSerializer(str)]

# The LLM stages' `window_minutes` (see shards.in_windows).
WindowMinutes = Annotated[
    float,
    Field(
        gt=0,
        description="How long one Ray Data execution runs before the shards left go to a new "
        "one. Each execution runs in a process of its own, whose memory grows with the minutes "
        "and blocks it runs (about 2 MB a minute) and is returned when it exits; the driver "
        "stays flat whatever the window. A new execution restarts the vLLM engines, so keep "
        "windows long where engines load slowly.",
    ),
]


class CorpusRef(Strict):
    """A corpus on disk, in any format `raysynth convert` reads (Parquet also at a URI)."""

    path: Location = Field(
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


def resolve_path(base: Path, path: Path | str) -> Path | str:
    """`path` relative to `base`, unless it is absolute or a URI (s3://, gs://, ...)."""
    if isinstance(path, str) or path.is_absolute():
        return path
    return (base / path).resolve()


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
