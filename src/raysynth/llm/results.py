"""The columns the LLM stage adds to every row, and the stage summary computed from them.

Every backend produces the same five columns, so the stages downstream (generation,
annotation) read one contract whatever served the model, and a failed row is data: status
`error` with a reason, never a missing row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from raysynth.schema import USAGE

STATUS_OK = "ok"
STATUS_ERROR = "error"

RESULT_FIELDS = (
    pa.field("response", pa.string()),
    pa.field("usage", USAGE),
    pa.field("llm_status", pa.string()),
    pa.field("llm_error", pa.string()),
    pa.field("cached", pa.bool_()),
)
RESULT_COLUMNS = tuple(f.name for f in RESULT_FIELDS)


def ok_result(
    text: str, prompt_tokens: int | None, completion_tokens: int | None, cached: bool
) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return {
        "response": text,
        "usage": usage,
        "llm_status": STATUS_OK,
        "llm_error": None,
        "cached": cached,
    }


def error_result(reason: str) -> dict[str, Any]:
    return {
        "response": None,
        "usage": {"prompt_tokens": None, "completion_tokens": None},
        "llm_status": STATUS_ERROR,
        "llm_error": reason,
        "cached": False,
    }


def with_results(batch: pa.Table, results: list[dict[str, Any]]) -> pa.Table:
    """`batch` with the result columns appended (replacing any of the same name, so the
    output of one run can be fed to another)."""
    batch = batch.drop_columns([c for c in RESULT_COLUMNS if c in batch.column_names])
    for field in RESULT_FIELDS:
        values = pa.array([r[field.name] for r in results], type=field.type)
        batch = batch.append_column(field, values)
    return batch


@dataclass
class StageSummary:
    """Counts and token totals of one stage run; `rows == ok + error` always holds for a
    complete output, which is what `reconciles` checks."""

    rows: int = 0
    ok: int = 0
    error: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def reconciles(self) -> bool:
        return self.rows == self.ok + self.error

    def add(self, batch: pa.Table) -> None:
        """Count one batch of stage output (a writer can call this per shard it writes)."""
        status = batch.column("llm_status")
        usage = batch.column("usage").combine_chunks()
        self.rows += batch.num_rows
        self.ok += pc.sum(pc.equal(status, STATUS_OK)).as_py() or 0
        self.error += pc.sum(pc.equal(status, STATUS_ERROR)).as_py() or 0
        self.cached += pc.sum(batch.column("cached")).as_py() or 0
        self.prompt_tokens += pc.sum(usage.field("prompt_tokens")).as_py() or 0
        self.completion_tokens += pc.sum(usage.field("completion_tokens")).as_py() or 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def summarize(ds: Any) -> StageSummary:
    """The summary of a stage's output dataset, streamed over the result columns only. Give it
    a materialized dataset or the written output read back: a lazy one would run again."""
    summary = StageSummary()
    columns = ["llm_status", "cached", "usage"]
    for batch in ds.select_columns(columns).iter_batches(batch_format="pyarrow"):
        summary.add(batch)
    return summary
