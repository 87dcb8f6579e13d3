"""The cleaning pipeline: raw store -> one decision per candidate -> `CleanResult`.

Three phases, so the Prefect flows can run them separately and batch the middle one:

(a) `plan`: parse every raw message not yet decided, resolve inherited conditioning, run the
    message steps 1-8 and the attachment-index step 9 -> `Candidate`s (decided or not);
(b) media features of the undecided candidates, computed in batches by `FeatureStore`
    (`feature_keys` lists them);
(c) `decide`: header/resolution/decode steps 10-15 from the features, near-duplicate dedup (16)
    against everything screened so far, the NSFW threshold (17) -> `CleanResult`.

Decisions are persisted per clean generation under `derived/decisions/` (`DecisionStore`), so a
refresh only plans new candidates and dedup sees the hashes kept by earlier runs. `clean` runs the
three phases in-process (tests, benchmarks, `rebuild` without Prefect).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from midshard.cleaners.conditioning import Inheritance, Lineage
from midshard.cleaners.parse import MalformedMessageError, parse_message
from midshard.cleaners.steps import (
    MESSAGE_STEPS,
    Candidate,
    candidates_of,
    funnel,
    media_checks,
    run_steps,
    stored,
)
from midshard.killpoints import kill_point
from midshard.raw_store import RawStore
from midshard.records import Decision, Kind, Reason, Rejection, Sample, drop
from midshard.settings import Settings
from midshard.store import Store

if TYPE_CHECKING:
    from midshard.cleaners.features import Features

DECISIONS = "derived/decisions"
SIGNATURE_PARAMS = frozenset({"ex", "is", "hm"})


@dataclass(frozen=True, slots=True)
class Screened:
    """A candidate that passed steps 1-15: everything a sample needs, and its dHash for dedup.

    Persisted in full so a later NSFW threshold can turn it into a sample without re-scoring.
    """

    sample: Sample
    dhash: int
    decision: str  # "keep", "nsfw" or "duplicate_of:<key>"


@dataclass(slots=True)
class CleanResult:
    """Decisions of one clean generation. `samples` and `rejections` are sorted by key."""

    samples: list[Sample]
    rejections: list[Rejection]
    counts: dict[str, int]
    screened: list[Screened] = field(default_factory=list)


# -- (a) message-level steps ----------------------------------------------------------------------
def message_decision(candidate: Candidate, settings: Settings) -> Decision:
    """Steps 1-8 on one candidate."""
    return run_steps(candidate, MESSAGE_STEPS, settings)


def downloadable_attachments(message: dict, settings: Settings) -> list[int]:
    """Attachment ids of a raw message (either shape) that pass steps 1-8, ignoring parents.

    The collectors download only these (`download = filtered`): a parent can only add a drop.
    """
    try:
        parsed = parse_message(message, settings.bot_ids)
    except MalformedMessageError:
        return []
    ids: list[int] = []
    for candidate in candidates_of(parsed, settings):
        attachment = candidate.attachment
        if attachment and attachment.id not in ids and message_decision(candidate, settings).kept:
            ids.append(attachment.id)
    return ids


def plan(raw: RawStore, settings: Settings, already_decided: set[str]) -> list[Candidate]:
    """Candidates of every raw message not yet decided, with steps 1-9 applied (sorted by key).

    Every raw message is parsed (a new reply's parent may be old); only undecided ones are kept.
    """
    lineage: dict[int, Lineage] = {}
    pending = []
    for channel_id, message in raw.iter_messages():
        try:
            parsed = parse_message(message, settings.bot_ids, channel_id)
        except MalformedMessageError:  # not storable without an id; never in a real raw store
            continue
        lineage[parsed.id] = Lineage(parsed.image_conditioned, parsed.parent_id)
        if any(c.key not in already_decided for c in candidates_of(parsed, settings)):
            pending.append(parsed)
    inheritance = Inheritance(lineage.get)
    results = raw.attachment_results()
    out = []
    for parsed in pending:
        inherits = parsed.kind is not Kind.NOT_MIDJOURNEY and not parsed.image_conditioned
        if inherits and inheritance.conditioned(lineage[parsed.id]):
            parsed = replace(parsed, image_conditioned=True)
        for candidate in candidates_of(parsed, settings):
            if candidate.key in already_decided:
                continue
            decision = message_decision(candidate, settings)
            sha256 = None
            if decision.kept:
                assert candidate.attachment is not None
                result = results.get(candidate.attachment.id)
                sha256 = result.sha256 if result and result.sha256 else None
                decision = stored(result.error if result else None, sha256)
            out.append(replace(candidate, sha256=sha256, decision=None if decision.kept else decision))
    return sorted(out, key=lambda c: c.key)


def feature_keys(candidates: Iterable[Candidate]) -> list[tuple[str, int]]:
    """(sha256, tile) of the undecided candidates: the work list of phase (b), sorted, unique."""
    return sorted({(c.sha256, c.tile) for c in candidates if c.decision is None and c.sha256})


# -- (c) media steps, dedup, NSFW ----------------------------------------------------------------
def decide(
    candidates: list[Candidate],
    features: dict[tuple[str, int], Features],
    settings: Settings,
    kept: KeptHashes | None = None,
) -> CleanResult:
    """Final decision of every candidate: steps 10-17 for the undecided ones.

    `features` maps (sha256, tile) -> `Features`; `kept` holds the hashes that earlier runs
    screened (dedup is against them too; an earlier run's image wins over a new one).
    """
    from midshard.cleaners.dedup import NearDuplicateFilter
    from midshard.cleaners.nsfw import nsfw_decision

    kept = kept or KeptHashes.empty()
    final: dict[str, Decision] = {}
    survivors = []
    ordered = sorted(candidates, key=lambda c: c.key)
    for candidate in ordered:
        if candidate.decision is not None:
            final[candidate.key] = candidate.decision
            continue
        feature = features.get((candidate.sha256, candidate.tile))
        missing = drop(Reason.DOWNLOAD_FAILED, "no_features")
        decision = missing if feature is None else media_checks(feature)
        final[candidate.key] = decision
        if decision.kept:
            survivors.append((candidate, feature))
    dedup = NearDuplicateFilter(settings, kept.keys, kept.phash, kept.dhash)
    duplicates = dedup.run(
        [c.key for c, _ in survivors],
        np.array([f.phash for _, f in survivors], dtype=np.uint64),
        np.array([f.dhash for _, f in survivors], dtype=np.uint64),
    )
    screened = []
    for (candidate, feature), duplicate_of in zip(survivors, duplicates, strict=True):
        if duplicate_of is not None:
            decision = drop(Reason.DUPLICATE, duplicate_of)
        else:
            decision = nsfw_decision(feature.nsfw_score, settings.nsfw_threshold)
        final[candidate.key] = decision
        screened.append(Screened(to_sample(candidate, feature), int(feature.dhash), str(decision)))
    return _result(ordered, final, screened)


def _result(ordered: list[Candidate], final: dict[str, Decision], screened: list[Screened]) -> CleanResult:
    by_key = {s.sample.key: s.sample for s in screened}
    samples, rejections = [], []
    counts = {"messages": len({c.message.id for c in ordered}), "candidates": len(ordered)}
    counts.update(funnel(final.values()))
    for candidate in ordered:
        decision = final[candidate.key]
        if decision.kept:
            samples.append(by_key[candidate.key])
        else:
            rejections.append(to_rejection(candidate, decision))
    return CleanResult(samples, rejections, counts, screened)


def to_sample(candidate: Candidate, feature: Features) -> Sample:
    """The sample of a screened candidate: a tile's sha256/size/format are those of its tile PNG."""
    m = candidate.message
    assert candidate.attachment is not None and candidate.sha256 is not None
    sha256, file_size, image_format = feature.member
    return Sample(
        key=candidate.key,
        message_id=m.id,
        channel_id=m.channel_id,
        attachment_id=candidate.attachment.id,
        tile=candidate.tile,
        timestamp=m.timestamp,
        url=unsigned_url(candidate.attachment.url),
        kind=m.kind.value,
        prompt=m.prompt,
        raw_prompt=m.raw_prompt,
        params=dict(m.params),
        width=feature.width,
        height=feature.height,
        format=image_format,
        file_size=file_size,
        sha256=sha256,
        phash=f"{feature.phash:016x}",
        phash_impl=feature.phash_impl,
        nsfw_score=float(feature.nsfw_score),
        nsfw_scorer=feature.nsfw_scorer,
    )


def to_rejection(candidate: Candidate, decision: Decision) -> Rejection:
    m = candidate.message
    return Rejection(
        key=candidate.key,
        message_id=m.id,
        channel_id=m.channel_id,
        attachment_id=candidate.attachment_id,
        tile=candidate.tile,
        timestamp=m.timestamp,
        kind=m.kind.value,
        prompt=m.prompt,
        decision=str(decision),
        sha256=candidate.sha256 or "",
    )


def unsigned_url(url: str) -> str:
    """The attachment URL without Discord's expiring `ex`/`is`/`hm` signature."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SIGNATURE_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- decisions storage ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeptHashes:
    """Keys and hashes of every candidate that passed dedup in earlier generations."""

    keys: list[str]
    phash: np.ndarray
    dhash: np.ndarray

    @classmethod
    def empty(cls) -> KeptHashes:
        return cls([], np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64))


_REJECTION_COLUMNS = (
    "key",
    "message_id",
    "channel_id",
    "attachment_id",
    "tile",
    "timestamp",
    "kind",
    "prompt",
)


class DecisionStore:
    """`derived/decisions/decisions-NNNNNN.parquet`, one file per clean generation, latest wins.

    Each row is one candidate: its decision and, for screened candidates (passed steps 1-15),
    every sample field plus the dHash. Loading re-applies the current NSFW threshold to screened
    rows, so changing the threshold needs no re-scoring and no re-deduplication. Reads stay
    columnar (Arrow) until rows are turned into records.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def generations(self) -> list[str]:
        return self.store.list(DECISIONS, ".parquet")

    def append(self, result: CleanResult) -> str | None:
        """Persist one generation atomically; returns its path (None when there is nothing)."""
        if not result.rejections and not result.screened:
            return None
        screened_keys = {s.sample.key for s in result.screened}
        rows = [_screened_row(s) for s in result.screened]
        rows += [_rejection_row(r) for r in result.rejections if r.key not in screened_keys]
        rows.sort(key=lambda row: row["key"])
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=DECISION_SCHEMA), buffer, compression="zstd")
        path = f"{DECISIONS}/decisions-{len(self.generations()) + 1:06d}.parquet"
        self.store.write_bytes(path, buffer.getvalue())
        kill_point("decisions_written")
        return path

    def clear(self) -> None:
        """Forget every decision (`rebuild` recomputes them from raw)."""
        for path in self.generations():
            self.store.remove(path)

    def table(self, columns: list[str] | None = None) -> pa.Table:
        """The latest row of every key (these columns, `key` first), sorted by key."""
        columns = ["key", *(c for c in columns or DECISION_SCHEMA.names if c != "key")]
        parts = [
            pq.read_table(io.BytesIO(self.store.read_bytes(p)), columns=columns) for p in self.generations()
        ]
        table = pa.concat_tables(parts) if parts else DECISION_SCHEMA.empty_table().select(columns)
        numbered = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        latest = numbered.group_by("key", use_threads=False).aggregate([("_row", "max")])
        return table.take(latest.column("_row_max")).sort_by("key")

    def rows(self) -> dict[str, dict]:
        """Latest row per key, as dicts."""
        return {row["key"]: row for row in self.table().to_pylist()}

    def decided_keys(self) -> set[str]:
        """Keys with a final decision; download failures are re-planned on every refresh."""
        table = self.table(["decision"])
        retry = pc.starts_with(table.column("decision"), Reason.DOWNLOAD_FAILED.value)
        return set(table.filter(pc.invert(retry)).column("key").to_pylist())

    def kept_hashes(self) -> KeptHashes:
        """Hashes of the screened candidates that were not duplicates (dedup compares against them)."""
        table = self.table(["decision", "phash", "dhash"])
        duplicate = pc.starts_with(table.column("decision"), Reason.DUPLICATE.value)
        table = table.filter(pc.and_(pc.is_valid(table.column("phash")), pc.invert(duplicate)))
        return KeptHashes(
            table.column("key").to_pylist(),
            table.column("phash").to_numpy().astype(np.uint64),
            table.column("dhash").to_numpy().astype(np.uint64),
        )

    def load(self, settings: Settings) -> tuple[list[Sample], list[Rejection]]:
        """Every current sample and rejection (sorted by key), with the current NSFW threshold."""
        from midshard.cleaners.nsfw import nsfw_decision

        samples, rejections = [], []
        for row in self.table().to_pylist():
            decision = Decision.parse(row["decision"])
            if row["phash"] is not None:
                sample = _row_sample(row)
                if decision.reason is not Reason.DUPLICATE:
                    decision = nsfw_decision(sample.nsfw_score, settings.nsfw_threshold)
                if decision.kept:
                    samples.append(sample)
                    continue
            fields = {c: row[c] for c in _REJECTION_COLUMNS}
            rejections.append(Rejection(**fields, decision=str(decision), sha256=row["sha256"]))
        return samples, rejections


DECISION_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("decision", pa.string()),
        ("message_id", pa.uint64()),
        ("channel_id", pa.uint64()),
        ("attachment_id", pa.uint64()),
        ("tile", pa.uint8()),
        ("timestamp", pa.string()),
        ("kind", pa.string()),
        ("prompt", pa.string()),
        ("sha256", pa.string()),
        # screened candidates only (null otherwise)
        ("url", pa.string()),
        ("raw_prompt", pa.string()),
        ("params", pa.string()),  # JSON object
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("file_size", pa.int64()),
        ("phash", pa.uint64()),
        ("dhash", pa.uint64()),
        ("phash_impl", pa.string()),
        ("nsfw_score", pa.float64()),
        ("nsfw_scorer", pa.string()),
    ]
)


def _screened_row(screened: Screened) -> dict:
    s = screened.sample
    row = {name: getattr(s, name) for name in DECISION_SCHEMA.names if hasattr(s, name)}
    row.update(
        decision=screened.decision,
        params=json.dumps(s.params, ensure_ascii=False, sort_keys=True),
        phash=int(s.phash, 16),
        dhash=screened.dhash,
    )
    return row


def _rejection_row(rejection: Rejection) -> dict:
    row = {c: getattr(rejection, c) for c in _REJECTION_COLUMNS}
    row.update(decision=rejection.decision, sha256=rejection.sha256)
    return row


def _row_sample(row: dict) -> Sample:
    fields = {name: row[name] for name in Sample.__dataclass_fields__ if name not in ("params", "phash")}
    return Sample(**fields, params=json.loads(row["params"]), phash=f"{row['phash']:016x}")


# -- all phases in-process -----------------------------------------------------------------------
def clean(raw: RawStore, store: Store, settings: Settings, rebuild: bool = False) -> CleanResult:
    """Plan, compute missing features in batches of `clean_batch`, decide, persist one generation."""
    from midshard.cleaners.features import FeatureStore

    decisions = DecisionStore(store)
    if rebuild:
        decisions.clear()
    candidates = plan(raw, settings, decisions.decided_keys())
    feature_store = FeatureStore(store, settings)
    keys = feature_keys(candidates)
    features = feature_store.get(keys)
    missing = [k for k in keys if k not in features]
    for start in range(0, len(missing), settings.clean_batch):
        features.update(feature_store.compute(missing[start : start + settings.clean_batch], raw))
    result = decide(candidates, features, settings, decisions.kept_hashes())
    decisions.append(result)
    return result
