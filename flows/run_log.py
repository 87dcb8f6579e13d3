"""`derived/runs/`: when each run happened and what it added, one small JSON file per run.

The manifest records what every run did, deliberately without wall-clock times (a rebuild must
give the same bytes). This log holds the times, for `midshard status`: a flow adds its record when
it finishes (a failed or killed run adds none), named by the finishing time so a listing is in
order. Nothing reads it to decide anything; the manifest's run id joins the two.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from midshard.store import Store

RUNS = "derived/runs"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RunRecord:
    """One finished run."""

    kind: str
    run_id: str  # the manifest's id of the run
    started: str  # ISO-8601 UTC
    finished: str
    settings_fingerprint: str
    samples_written: dict[str, int] = field(default_factory=dict)  # per split
    shards_written: int = 0
    rejections: dict[str, int] = field(default_factory=dict)  # new this run, by reason
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # this run's seen, dropped, seconds
    midshard: str = ""  # version

    @property
    def seconds(self) -> float:
        return (datetime.fromisoformat(self.finished) - datetime.fromisoformat(self.started)).total_seconds()


def append(store: Store, record: RunRecord) -> str:
    """Add `record` to the log; returns its path."""
    stamp = datetime.fromisoformat(record.finished).strftime("%Y%m%dT%H%M%SZ")
    path = f"{RUNS}/{stamp}-{record.kind}-{record.run_id}.json"
    store.write_text(path, json.dumps(asdict(record), sort_keys=True, indent=1) + "\n")
    return path


def recent(store: Store, count: int) -> list[RunRecord]:
    """The last `count` runs recorded, oldest first (records this version cannot read are skipped)."""
    records = []
    for path in store.list(RUNS, ".json")[-count:]:
        try:
            records.append(RunRecord(**json.loads(store.read_bytes(path))))
        except (ValueError, TypeError):
            continue
    return records
