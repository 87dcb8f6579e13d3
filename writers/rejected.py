"""Candidates that did not reach a shard, with their one reason: `rejected/rejected-NNNNNN.parquet`.

Append-only like the shards: a run writes the rejections that are new to the dataset (sorted by
key, cut into files of `ROWS_PER_FILE`) after the existing files. Each file is written atomically,
so a rerun after a kill writes exactly the files the first attempt did not finish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from midshard.records import Decision, Rejection
from midshard.store import Store
from midshard.writers.layout import REJECTED, parse_rejected_file, rejected_file
from midshard.writers.sidecars import read_table, write_table

ROWS_PER_FILE = 100_000

_COLUMNS = {
    **dict.fromkeys(("key", "message_id", "channel_id", "attachment_id"), pa.string()),
    "tile": pa.int64(),
    **dict.fromkeys(("timestamp", "kind", "prompt", "decision", "reason", "detail"), pa.string()),
    "sha256": pa.string(),  # of the stored media, "" when there is none
    "run": pa.string(),  # id of the run that recorded the rejection
}
REJECTED_SCHEMA = pa.schema([pa.field(name, kind, nullable=False) for name, kind in _COLUMNS.items()])


def rejected_files(store: Store) -> list[str]:
    paths = store.list(REJECTED, ".parquet")
    return [p for p in paths if parse_rejected_file(p.rsplit("/", 1)[-1]) is not None]


def read_rejected(store: Store, columns: Sequence[str] | None = None) -> pa.Table:
    tables = [read_table(store, path, columns) for path in rejected_files(store)]
    if not tables:
        names = REJECTED_SCHEMA.names if columns is None else columns
        return pa.schema([REJECTED_SCHEMA.field(c) for c in names]).empty_table()
    return pa.concat_tables(tables)


def to_rejection(row: dict) -> Rejection:
    """A stored row back as a `Rejection` (e.g. to fetch its image for a report thumbnail)."""
    return Rejection(
        key=row["key"],
        message_id=int(row["message_id"]),
        channel_id=int(row["channel_id"]),
        attachment_id=int(row["attachment_id"]),
        tile=row["tile"],
        timestamp=row["timestamp"],
        kind=row["kind"],
        prompt=row["prompt"],
        decision=row["decision"],
        sha256=row["sha256"],
    )


def rejected_rows(rejections: Iterable[Rejection], run: str) -> list[dict]:
    """Rows sorted by key; raises ValueError on a decision that is not a known drop reason."""
    return [_row(r, run) for r in sorted(rejections, key=lambda r: r.key)]


def write_rejected(store: Store, rows: Sequence[dict]) -> list[str]:
    """Append rows (new keys only) as new files after the existing ones; returns their paths."""
    start = len(rejected_files(store))
    paths = []
    for number, offset in enumerate(range(0, len(rows), ROWS_PER_FILE)):
        path = rejected_file(start + number)
        chunk = rows[offset : offset + ROWS_PER_FILE]
        write_table(store, path, pa.Table.from_pylist(list(chunk), schema=REJECTED_SCHEMA))
        paths.append(path)
    return paths


def _row(rejection: Rejection, run: str) -> dict:
    decision = Decision.parse(rejection.decision)  # raises ValueError on an unknown reason code
    if decision.reason is None:
        raise ValueError(f"rejection {rejection.key} has decision 'keep'")
    return {
        "key": rejection.key,
        "message_id": str(rejection.message_id),
        "channel_id": str(rejection.channel_id),
        "attachment_id": str(rejection.attachment_id),
        "tile": rejection.tile,
        "timestamp": rejection.timestamp,
        "kind": rejection.kind,
        "prompt": rejection.prompt,
        "decision": rejection.decision,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "sha256": rejection.sha256,
        "run": run,
    }
