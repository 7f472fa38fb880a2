"""Corpora as Ray Datasets of documents, for the stages that stream them (train, evaluate).

Parquet (the `annotations` table, or any `documents` table, on any filesystem pyarrow reads)
streams through Ray Data; the other corpus formats are read by `raysynth.corpus` on the driver,
which suits the size of real test sets and hand-made corpora. Annotation rows whose status is
not ok are counted and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from raysynth.config_base import CorpusRef
from raysynth.corpus import guess_format, parse_label_map, read_documents
from raysynth.errors import ConfigError
from raysynth.schema import DOCUMENTS, STATUS_OK

BLOCK_ROWS = 256
SLICES_PER_GROUP = 8
# The driver keeps state per block of a running dataset (evaluating 300k sentences stored in
# 4,800 row groups: driver peak +206 MB and still rising after 29 min in 4,800 blocks, +149 MB
# and done in 15 min packed into 521), so a large corpus gets larger blocks, not more of
# them. 512 still feeds hundreds of actors.
MAX_BLOCKS = 512
DOC_COLUMNS = ("doc_id", "text", "entities", "tokens", "token_spans")


@dataclass
class SourceCounts:
    """Rows read, rows used, and rows left out with the reason (status != ok)."""

    rows: int
    used: int
    quarantined: int


def label_map_for(ref: CorpusRef, label_map: dict[str, str]) -> dict[str, str]:
    """The corpus's own mapping (`ref.label_map`) followed by the training one."""
    combined = {k: label_map.get(v, v) for k, v in parse_label_map(ref.label_map).items()}
    return {**label_map, **combined}


def scored_ref(ref: CorpusRef, label_map: dict[str, str]) -> CorpusRef:
    """`ref` with `label_map_for`'s combined mapping as its own: read with
    `corpus.read_documents`, its gold is in the labels the scorer compares against."""
    mapping = label_map_for(ref, label_map)
    spec = ",".join(f"{k}={v}" for k, v in mapping.items()) or None
    return ref.model_copy(update={"label_map": spec})


def load_documents(ref: CorpusRef, block_rows: int = BLOCK_ROWS) -> tuple[Any, SourceCounts]:
    """A Dataset with DOC_COLUMNS in blocks of about `block_rows` rows, more when the corpus
    would need over MAX_BLOCKS blocks (None when there is no row), and how many rows were
    read and left out."""
    import ray.data

    if (ref.format or guess_format(ref.path)) != "parquet":
        rows = [d.to_row() for d in read_documents(ref.path, ref.format, scheme=ref.scheme)]
        table = pa.Table.from_pylist(rows, schema=DOCUMENTS).select(list(DOC_COLUMNS))
        # Several blocks, so that an actor pool downstream has work for every actor.
        step = rows_per_block(len(table), block_rows)
        blocks = [table.slice(i, step) for i in range(0, len(table), step)]
        return ray.data.from_arrow(blocks) if rows else None, SourceCounts(*[len(rows)] * 2, 0)
    # MAX_BLOCKS is read here, not in the task: the driver's value is the one in force.
    plan = _plan_on_this_node(str(ref.path), block_rows, MAX_BLOCKS)
    columns, filesystem, total, used, slices = plan
    if not slices:
        return None, SourceCounts(0, 0, 0)
    # One block per slice, read inside the consumer's own operator (Ray Data fuses these
    # maps into it): `read_parquet` merges small files into one block, which a pool of
    # actors cannot share, and its read tasks would wait for CPUs a full actor pool holds.
    ds = ray.data.from_items(slices, override_num_blocks=len(slices))
    kwargs = {"columns": columns, "filesystem": filesystem}
    ds = ds.map_batches(_read_slice, fn_kwargs=kwargs, batch_size=1, batch_format="pyarrow")
    ds = ds.map_batches(_normalize, batch_format="pyarrow", zero_copy_batch=True)
    return ds.select_columns(list(DOC_COLUMNS)), SourceCounts(total, used, total - used)


def _plan_on_this_node(path: str, block_rows: int, max_blocks: int) -> tuple[Any, ...]:
    """`_parquet_plan` in a task on the driver's node (where a local path is): the footers it
    parses would stay in the driver's heap for good (300k sentences in 4,800 row groups:
    +75 MB when planned on the driver)."""
    import ray
    from ray.exceptions import RayTaskError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    task = ray.remote(num_cpus=0, scheduling_strategy=here)(_parquet_plan)
    try:
        return ray.get(task.remote(path, block_rows, max_blocks))
    except RayTaskError as err:
        if isinstance(err.cause, ConfigError):
            raise err.cause from None
        raise


def _parquet_plan(path: str, block_rows: int, max_blocks: int) -> tuple[Any, ...]:
    """The columns to read, the filesystem, the row counts and the slices of a Parquet corpus."""
    dataset = _parquet_dataset(path)
    names = dataset.schema.names
    columns = [c for c in (*DOC_COLUMNS, "note_id", "status") if c in names]
    total, used = _parquet_counts(dataset)
    slices = _parquet_slices(dataset, rows_per_block(total, block_rows, max_blocks))
    return columns, dataset.filesystem, total, used, slices


def _parquet_dataset(path: Any) -> Any:
    import pyarrow.dataset as pads

    try:
        return pads.dataset(str(path), format="parquet")
    except (OSError, pa.ArrowInvalid) as err:
        raise ConfigError(f"{path}: cannot read as Parquet ({err})") from None


def _parquet_counts(dataset: Any) -> tuple[int, int]:
    """(rows, rows whose status is ok), from the status column alone, batch by batch."""
    if "status" not in dataset.schema.names:
        rows = dataset.count_rows()
        return rows, rows
    rows = used = 0
    for batch in dataset.to_batches(columns=["status"]):
        rows += batch.num_rows
        used += batch.column(0).to_pylist().count(STATUS_OK)
    return rows, used


def rows_per_block(total: int, block_rows: int, max_blocks: int = MAX_BLOCKS) -> int:
    return max(block_rows, -(-total // max_blocks))


def _parquet_slices(dataset: Any, block_rows: int) -> list[dict[str, list]]:
    """Slices of about `block_rows` rows, as lists of pieces of row groups: a large group is
    cut into pieces of at least `block_rows` rows (at most SLICES_PER_GROUP, since each
    piece reads its whole group), and small groups, of one file or several, are packed
    together until a slice holds `block_rows` rows."""
    slices: list[dict[str, list]] = []
    rows = block_rows  # rows in the last slice: full, so the first piece opens a slice
    for fragment in dataset.get_fragments():
        for group in fragment.row_groups:
            step = max(block_rows, -(-group.num_rows // SLICES_PER_GROUP))
            for start in range(0, group.num_rows, step):
                piece = {"file": fragment.path, "group": group.id, "start": start,
                         "rows": min(step, group.num_rows - start)}  # fmt: skip
                if rows + piece["rows"] > block_rows:
                    slices.append({"pieces": []})
                    rows = 0
                slices[-1]["pieces"].append(piece)
                rows += piece["rows"]
    return slices


def _read_slice(batch: pa.Table, columns: list[str], filesystem: Any) -> pa.Table:
    """One slice; `filesystem` is the dataset's own (local, S3, ...), which its fragments'
    paths are relative to."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    [item] = batch.to_pylist()
    tables = []
    for piece in item["pieces"]:
        with filesystem.open_input_file(piece["file"]) as handle:
            group = pq.ParquetFile(handle).read_row_group(piece["group"], columns=columns)
        tables.append(group.slice(piece["start"], piece["rows"]))
    table = pa.concat_tables(tables)
    if "status" in table.column_names:
        table = table.filter(pc.equal(table.column("status"), STATUS_OK))
    return table


def _normalize(table: pa.Table) -> pa.Table:
    """Annotations are keyed by note_id, documents by doc_id; tokens may be absent."""
    if "doc_id" not in table.column_names and "note_id" in table.column_names:
        table = table.rename_columns(
            ["doc_id" if c == "note_id" else c for c in table.column_names]
        )
    missing = [c for c in ("doc_id", "text", "entities") if c not in table.column_names]
    if missing:
        raise ConfigError(f"the data lacks column(s) {', '.join(missing)}")
    for name in ("tokens", "token_spans"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(len(table), DOCUMENTS.field(name).type))
    return table
