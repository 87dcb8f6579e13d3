"""Candidates that did not reach a shard, with their one reason: `rejected/rejected-NNNNNN.parquet`.

Append-only like the shards: a run writes the rejections that are new to the dataset (in key order,
cut into files of `ROWS_PER_FILE`) after the existing files. Each file is written atomically, so a
rerun after a kill writes exactly the files the first attempt did not finish. Rows are held as
Arrow batches until a file is full, never as one Python object each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from midshard.records import Decision, Rejection
from midshard.schema import ARROW_TYPES, PROVENANCE, arrow_kind
from midshard.store import Store
from midshard.writers.layout import REJECTED, parse_rejected_file, rejected_file
from midshard.writers.schema import SNOWFLAKES
from midshard.writers.sidecars import read_table, write_table

ROWS_PER_FILE = 100_000
_TILE = pa.int64()  # as in the samples' JSON (an int), not the derived store's uint8

# The `Rejection` record's columns (snowflakes as strings, as in the samples' JSON), the decision
# split into its reason code and detail, and the id of the run that recorded it.
_COLUMNS = {
    **{
        name: pa.string()
        if name in SNOWFLAKES or name == "key"
        else _TILE
        if name == "tile"
        else ARROW_TYPES[arrow_kind(Rejection, name)]
        for name in PROVENANCE
    },
    "decision": pa.string(),
    "reason": pa.string(),
    "detail": pa.string(),
    "sha256": pa.string(),
    "run": pa.string(),
}
REJECTED_SCHEMA = pa.schema([pa.field(name, kind, nullable=False) for name, kind in _COLUMNS.items()])


def rejected_files(store: Store) -> list[str]:
    paths = store.list(REJECTED, ".parquet")
    return [p for p in paths if parse_rejected_file(p.rsplit("/", 1)[-1]) is not None]


def read_rejected(store: Store, columns: Sequence[str]) -> Iterator[pa.Table]:
    """These columns of every rejected file, one table per file."""
    for path in rejected_files(store):
        yield read_table(store, path, columns)


def rows_of_run(store: Store, run: str) -> int:
    """Rejected rows recorded by the run `run` (all its attempts: a resumed write counts once)."""
    return sum(
        pc.sum(pc.equal(table.column("run"), run)).as_py() or 0 for table in read_rejected(store, ["run"])
    )


def to_rejection(row: dict) -> Rejection:
    """A stored row back as a `Rejection` (e.g. to fetch its image for a report thumbnail)."""
    values = {name: int(row[name]) if name in SNOWFLAKES else row[name] for name in PROVENANCE}
    return Rejection(**values, decision=row["decision"], sha256=row["sha256"])


class RejectedStream:
    """Appends rejections (in key order) as new files after the existing ones."""

    _BATCH = 4096

    def __init__(self, store: Store, run: str) -> None:
        self.store = store
        self.run = run
        self.next_index = len(rejected_files(store))
        self.written = 0  # rows
        self._rows: list[dict] = []
        self._batches: list[pa.RecordBatch] = []
        self._held = 0  # rows in _batches

    def add(self, rejection: Rejection) -> None:
        """Raises ValueError on a decision that is not a known drop reason."""
        self._rows.append(_row(rejection, self.run))
        if len(self._rows) >= self._BATCH or self._held + len(self._rows) >= ROWS_PER_FILE:
            self._seal()
        if self._held >= ROWS_PER_FILE:
            self.flush()

    def _seal(self) -> None:
        """The rows added since the last call become one Arrow batch."""
        if self._rows:
            self._batches.append(pa.RecordBatch.from_pylist(self._rows, schema=REJECTED_SCHEMA))
            self._held += len(self._rows)
            self._rows = []

    def flush(self) -> None:
        self._seal()
        if not self._held:
            return
        table = pa.Table.from_batches(self._batches, schema=REJECTED_SCHEMA).combine_chunks()
        write_table(self.store, rejected_file(self.next_index), table)
        self.next_index += 1
        self.written += self._held
        self._batches, self._held = [], 0


def _row(rejection: Rejection, run: str) -> dict:
    decision = Decision.parse(rejection.decision)  # raises ValueError on an unknown reason code
    if decision.reason is None:
        raise ValueError(f"rejection {rejection.key} has decision 'keep'")
    return {
        **{
            name: str(getattr(rejection, name)) if name in SNOWFLAKES else getattr(rejection, name)
            for name in PROVENANCE
        },
        "decision": rejection.decision,
        "reason": decision.reason.value,
        "detail": decision.detail,
        "sha256": rejection.sha256,
        "run": run,
    }
