"""The columns of the derived store, derived from the records that declare them (`midshard.records`).

`Sample` and `Rejection` declare every candidate column once, with its Arrow type and meaning; this
module turns them into the Arrow schema of `derived/decisions/` and converts records to rows and
back. The writers derive the sample's `.json` member, the parquet sidecars and the Hugging Face
features from the same declarations (`midshard.writers.schema`).
"""

from __future__ import annotations

import json
from dataclasses import Field, fields
from typing import Any

import pyarrow as pa

from midshard.records import Provenance, Rejection, Sample

# Arrow type of each `column(...)` kind. "json" holds a dict as a JSON object string; "hex64" a
# 16-hex-digit string as the unsigned 64-bit integer it spells (dedup compares them as numbers).
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "json": pa.string(),
    "uint64": pa.uint64(),
    "hex64": pa.uint64(),
    "uint8": pa.uint8(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float64": pa.float64(),
}

PROVENANCE = tuple(f.name for f in fields(Provenance))
SAMPLE_ONLY = tuple(f.name for f in fields(Sample) if f.name not in PROVENANCE)
REJECTION_ONLY = tuple(f.name for f in fields(Rejection) if f.name not in PROVENANCE)


def field_doc(record: type, name: str) -> str:
    return _field(record, name).metadata["doc"]


def arrow_kind(record: type, name: str) -> str:
    """The `column(...)` kind of a record field: a key of `ARROW_TYPES`."""
    return _field(record, name).metadata["arrow"]


def arrow_field(record: type, name: str) -> pa.Field:
    return pa.field(name, ARROW_TYPES[arrow_kind(record, name)])


def _field(record: type, name: str) -> Field:
    return next(f for f in fields(record) if f.name == name)


# One row per candidate: its decision and the step that made it, its provenance, the media columns
# once it was screened (null before), the dHash dedup compares, and its message's lineage (own
# conditioning and parent), so a later run resolves inherited conditioning without parsing old
# messages again.
DECISION_SCHEMA = pa.schema(
    [
        arrow_field(Provenance, "key"),
        arrow_field(Rejection, "decision"),
        pa.field("step", pa.string()),  # the step that dropped it (null: kept)
        *(arrow_field(Provenance, name) for name in PROVENANCE[1:]),
        *(arrow_field(Sample, name) for name in SAMPLE_ONLY),
        pa.field("dhash", pa.uint64()),
        pa.field("conditioned", pa.bool_()),  # the message's own conditioning (before inheritance)
        pa.field("parent_id", pa.uint64()),  # message_reference, null when none
    ]
)


def sample_row(sample: Sample, decision: str, dhash: int) -> dict[str, Any]:
    """The decision row of a screened candidate (kept, or dropped by dedup or NSFW)."""
    row = {name: getattr(sample, name) for name in PROVENANCE + SAMPLE_ONLY}
    row.update(
        decision=decision,
        params=json.dumps(sample.params, ensure_ascii=False, sort_keys=True),
        phash=int(sample.phash, 16),
        dhash=dhash,
    )
    return row


def rejection_row(rejection: Rejection) -> dict[str, Any]:
    """The decision row of a candidate dropped before it was screened."""
    return {name: getattr(rejection, name) for name in PROVENANCE + REJECTION_ONLY}


def row_sample(row: dict[str, Any]) -> Sample:
    values = {name: row[name] for name in PROVENANCE + SAMPLE_ONLY}
    values.update(params=json.loads(row["params"]), phash=f"{row['phash']:016x}")
    return Sample(**values)


def row_rejection(row: dict[str, Any]) -> Rejection:
    return Rejection(
        **{name: row[name] for name in PROVENANCE}, decision=row["decision"], sha256=row["sha256"] or ""
    )
