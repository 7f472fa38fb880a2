"""Arrow schemas of the tables stages exchange (DESIGN.md, "Data contracts"), defined once.

Every Parquet file raysynth writes uses one of these, so a stage can check its input before
doing any work and a shard written on one node reads the same on another.
"""

from __future__ import annotations

import pyarrow as pa

ENTITY = pa.struct(
    [
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        # seed | llm | kb | a "+"-joined merge of them; null for human gold.
        pa.field("source", pa.string()),
        # (start, end) pieces of a discontinuous mention; null when contiguous.
        pa.field("fragments", pa.list_(pa.list_(pa.int32()))),
    ]
)
ENTITIES = pa.list_(ENTITY)

SEED_ENTITY = pa.struct([pa.field("text", pa.string()), pa.field("label", pa.string())])

MESSAGE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

# Token counts reported by the endpoint; null where the backend did not report them.
USAGE = pa.struct(
    [
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
    ]
)

# Stored as a JSON string: model name, sampling parameters, strategy and prompt hash vary by
# backend, and a free-form map keeps the schema stable across them.
PROVENANCE = pa.string()

TOKEN_SPANS = pa.list_(pa.list_(pa.int32()))

DOCUMENTS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("entities", ENTITIES),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("token_spans", TOKEN_SPANS),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("meta", pa.map_(pa.string(), pa.string())),
    ]
)

PROMPTS = pa.schema(
    [
        pa.field("note_id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE)),
        pa.field("prompt", pa.string()),
        pa.field("seed_entities", pa.list_(SEED_ENTITY)),
        pa.field("note_type", pa.string()),
        pa.field("specialty", pa.string()),
        pa.field("language", pa.string()),
    ]
)

# Where the generate stage found one seeded term in its note: `match` is the tier that found
# it (exact | case | fuzzy) or `missing`; start/end are its first occurrence, count how many.
SEED_MATCH = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("label", pa.string()),
        pa.field("match", pa.string()),
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("count", pa.int32()),
    ]
)

# Note status: ok | failed (the LLM call failed) | removed (post-processing: too short,
# meta-text, duplicate); `reason` says why, and notes that were kept but changed (truncated).
NOTES = pa.schema(
    [
        pa.field("note_id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("seed_entities", pa.list_(SEED_ENTITY)),
        pa.field("generator", PROVENANCE),
        pa.field("usage", USAGE),
        pa.field("entities", ENTITIES),
        pa.field("seed_matches", pa.list_(SEED_MATCH)),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("note_type", pa.string()),
        pa.field("specialty", pa.string()),
        pa.field("language", pa.string()),
    ]
)

STATUS_OK = "ok"
STATUS_QUARANTINED = "quarantined"

ANNOTATIONS = pa.schema(
    [
        pa.field("note_id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("entities", ENTITIES),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("annotator", PROVENANCE),
        pa.field("usage", USAGE),
    ]
)

PREDICTIONS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("gold", ENTITIES),
        pa.field("pred", ENTITIES),
        pa.field("tokens", pa.list_(pa.string())),
        pa.field("gold_tags", pa.list_(pa.string())),
        pa.field("pred_tags", pa.list_(pa.string())),
        # What the tag-level scores could not see in this document (see evaluate.predict).
        pa.field("unscored_gold", pa.int32()),
        pa.field("unseen_words", pa.int32()),
        pa.field("gold_conflicts", pa.int32()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "documents": DOCUMENTS,
    "prompts": PROMPTS,
    "notes": NOTES,
    "annotations": ANNOTATIONS,
    "predictions": PREDICTIONS,
}


def missing_columns(schema: pa.Schema, table: str) -> list[str]:
    """Columns `table` requires that `schema` lacks: a stage calls this on its input before
    starting work, so a wrong file fails with the column names instead of deep in a worker."""
    have = set(schema.names)
    return [name for name in TABLES[table].names if name not in have]
