"""The clean stage: new raw messages -> one decision per candidate, persisted part by part.

A run reads only the raw batches that no earlier run settled (`DecisionStore.settled_batches`),
merged across channels in message-id order, so candidates are decided in key order (the earliest
wins dedup) whatever the chunking. It works in chunks of `CHUNK_MESSAGES` messages:

    plan    parse, inherit conditioning (parents from this run, else from the persisted lineage),
            run every step that needs only the message and the attachment index;
            -> the chunk's images whose features are needed (`Chunk.feature_keys`), which the
               caller computes (the flows in batched tasks, `clean` in-process);
    decide  run the remaining steps (features, dedup against everything kept so far, NSFW) and
            persist the chunk as one part of `derived/decisions/`.

Memory follows the chunk, plus two columns of history (`Lineage`, ~17 bytes per decided message;
the kept hashes, ~40 bytes per kept image); no old message is parsed again.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from midshard.cleaners.conditioning import Inheritance, Lineage
from midshard.cleaners.decisions import DecisionStore, LineageColumns, PartInfo, Verdict
from midshard.cleaners.dedup import NearDuplicate, NearDuplicateFilter
from midshard.cleaners.parse import MalformedMessageError, parse_message
from midshard.cleaners.registry import STEPS, build
from midshard.cleaners.steps import (
    BEFORE_MEDIA,
    EVERYTHING,
    Candidate,
    Needs,
    Pending,
    Pipeline,
    candidates_of,
)
from midshard.raw_store import AttachmentResult, RawStore
from midshard.records import Kind, ParsedMessage, Reason, Rejection, Sample
from midshard.schema import rejection_row, sample_row
from midshard.settings import Settings
from midshard.store import Store

if TYPE_CHECKING:
    from midshard.cleaners.features import Features, Key

CHUNK_MESSAGES = 8192
SIGNATURE_PARAMS = frozenset({"ex", "is", "hm"})
_SCREENED_AT = STEPS.index(NearDuplicate)  # a candidate that reached dedup passed every step before it


@dataclass(slots=True)
class _Batch:
    """A raw batch being read: where its media stands, and whether it can be settled."""

    channel_id: int
    path: str
    results: dict[int, AttachmentResult] | None  # None: its media is not done yet
    last_id: int = 0
    held: bool = False  # a candidate of it waits for features a worker could not compute

    @property
    def settles(self) -> bool:
        return self.results is not None and not self.held


@dataclass
class Chunk:
    """One chunk's candidates on their way through the steps."""

    pending: list[Pending] = field(default_factory=list)
    batch_of: dict[int, _Batch] = field(default_factory=dict)  # message id -> its batch
    own: dict[int, Lineage] = field(default_factory=dict)  # message id -> its own conditioning
    previous: dict[str, Verdict] = field(default_factory=dict)  # key -> live decision of an earlier run
    closes: list[_Batch] = field(default_factory=list)  # batches whose last message is here
    new_messages: int = 0

    def feature_keys(self) -> list[Key]:
        """(sha256, tile) of the candidates waiting for features: sorted, unique."""
        return sorted({(p.candidate.sha256, p.candidate.tile) for p in self.pending if not p.decided})


@dataclass
class CleanReport:
    """What a run's clean stage did (its step statistics include timings: never in `dataset/`)."""

    candidates: int = 0
    parts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # damaged raw files and lines, named
    steps: dict[str, dict[str, float | int]] = field(default_factory=dict)


class Cleaner:
    """Decides the candidates of every raw batch not settled yet; see the module docstring."""

    def __init__(self, raw: RawStore, decisions: DecisionStore, settings: Settings) -> None:
        self.raw = raw
        self.decisions = decisions
        self.settings = settings
        self.history = decisions.lineage()
        self.kept = NearDuplicateFilter(settings, decisions.kept_hashes())
        self.pipeline = Pipeline(build(settings, self.kept))
        self.report = CleanReport()
        self._run_lineage: list[LineageColumns] = []

    # -- planning -------------------------------------------------------------------------------
    def chunks(self) -> Iterator[Chunk]:
        """The planned chunks of this run, oldest messages first."""
        settled = self.decisions.settled_batches()
        streams = []
        for channel_id in self.raw.channels():
            todo = [p for p in self.raw.message_batches(channel_id) if p not in settled]
            if todo:
                streams.append(self._messages(channel_id, todo))
        merged = heapq.merge(*streams, key=lambda item: item[0].id)
        while group := list(itertools.islice(merged, CHUNK_MESSAGES)):
            yield self._plan(group)

    def _messages(self, channel_id: int, paths: list[str]) -> Iterator[tuple[ParsedMessage, _Batch]]:
        """A channel's parsed messages in id order, each id once; a batch is read when reached."""
        newest = 0
        for path in paths:
            batch = _Batch(channel_id, path, self.raw.batch_attachment_results(channel_id, path))
            for message in self.raw.read_batch(path, self.report.problems):
                try:
                    parsed = parse_message(message, self.settings.bot_ids, channel_id)
                except MalformedMessageError as error:
                    self.report.problems.append(f"{path}: {error}")
                    continue
                if parsed.id > newest:
                    newest = batch.last_id = parsed.id
                    yield parsed, batch
            if not batch.last_id:  # nothing readable in it: settled by the next chunk
                batch.last_id = newest

    def _plan(self, group: list[tuple[ParsedMessage, _Batch]]) -> Chunk:
        chunk = Chunk()
        for parsed, batch in group:
            chunk.own[parsed.id] = Lineage(parsed.image_conditioned, parsed.parent_id)
            chunk.batch_of[parsed.id] = batch
            if parsed.id == batch.last_id:
                chunk.closes.append(batch)
        inheritance = Inheritance(lambda message_id: self._lineage(chunk, message_id))
        decided_before = []
        for parsed, batch in group:
            if parsed.kind is not Kind.NOT_MIDJOURNEY and inheritance.conditioned(chunk.own[parsed.id]):
                parsed = replace(parsed, image_conditioned=True)
            seen = self.history.get(parsed.id) is not None
            chunk.new_messages += not seen
            for candidate in candidates_of(parsed, self.settings):
                if candidate.attachment is not None and batch.results is not None:
                    candidate = replace(candidate, stored=batch.results.get(candidate.attachment.id))
                chunk.pending.append(Pending(candidate))
                if seen:
                    decided_before.append(candidate.key)
        if decided_before:  # a batch read again: only its download failures are decided again
            chunk.previous = self.decisions.previous(decided_before)
            chunk.pending = [p for p in chunk.pending if _open(chunk.previous.get(p.candidate.key))]
        self._remember(chunk)
        self.pipeline.advance(chunk.pending, BEFORE_MEDIA)
        return chunk

    def _lineage(self, chunk: Chunk, message_id: int) -> Lineage | None:
        """A message's own conditioning and parent: this chunk, this run, then the history."""
        if message_id in chunk.own:
            return chunk.own[message_id]
        for columns in (*reversed(self._run_lineage), self.history):
            if (found := columns.get(message_id)) is not None:
                return Lineage(*found)
        return None

    def _remember(self, chunk: Chunk) -> None:
        ids = np.fromiter(chunk.own, np.uint64, len(chunk.own))
        conditioned = np.fromiter((v.conditioned for v in chunk.own.values()), bool, len(chunk.own))
        parents = np.fromiter((v.parent_id or 0 for v in chunk.own.values()), np.uint64, len(chunk.own))
        order = np.argsort(ids)
        self._run_lineage.append(LineageColumns(ids[order], conditioned[order], parents[order]))

    # -- deciding -------------------------------------------------------------------------------
    def decide(self, chunk: Chunk, features: dict[Key, Features]) -> str | None:
        """Run the remaining steps with the chunk's features; persist it as one part."""
        for pending in chunk.pending:
            c = pending.candidate
            if not pending.decided:
                pending.candidate = replace(c, features=features.get((c.sha256, c.tile)))
        self.pipeline.advance(chunk.pending, EVERYTHING)
        rows, counts, replaced = [], Counter[str](), Counter[str]()
        for pending in chunk.pending:
            verdict, before = self._verdict(pending), chunk.previous.get(pending.candidate.key)
            if verdict == before:
                continue  # decided again, the same way: nothing to record
            if verdict.decision.endswith(":no_features"):
                chunk.batch_of[pending.candidate.message.id].held = True
            rows.append(self._row(pending, chunk, verdict))
            counts[verdict.tally_key] += 1
            if before is not None:
                replaced[before.tally_key] += 1
        settles = [batch.path for batch in chunk.closes if batch.settles]
        info = PartInfo(settles, dict(counts), dict(replaced), chunk.new_messages, supersedes=bool(replaced))
        part = self.decisions.append(rows, info)
        self.report.candidates += len(rows)
        if part is not None:
            self.report.parts.append(part)
        self.report.steps = {name: stats.as_dict() for name, stats in self.pipeline.stats.items()}
        return part

    def _verdict(self, pending: Pending) -> Verdict:
        assert pending.decision is not None
        step = "" if pending.decision.kept else self.pipeline.steps[pending.at].name
        return Verdict(str(pending.decision), step)

    def _row(self, pending: Pending, chunk: Chunk, verdict: Verdict) -> dict:
        c, decision = pending.candidate, verdict.decision
        own = chunk.own[c.message.id]
        lineage = {"conditioned": own.conditioned, "parent_id": own.parent_id, "step": verdict.step or None}
        if pending.at >= _SCREENED_AT:
            assert c.features is not None
            return {**sample_row(to_sample(c), decision, c.features.dhash), **lineage}
        return {**rejection_row(to_rejection(c, decision)), **lineage, "dhash": None}


def _open(verdict: Verdict | None) -> bool:
    """Whether a candidate decided before is decided again: only download failures are."""
    return verdict is None or verdict.decision.startswith(Reason.DOWNLOAD_FAILED.value)


def to_sample(c: Candidate) -> Sample:
    """The sample of a screened candidate: a tile's sha256/size/format are those of its tile PNG."""
    m, f = c.message, c.features
    assert c.attachment is not None and f is not None
    sha256, file_size, image_format = f.member
    score = float(f.nsfw_score)
    return Sample(
        key=c.key,
        message_id=m.id,
        channel_id=m.channel_id,
        attachment_id=c.attachment.id,
        tile=c.tile,
        timestamp=m.timestamp,
        kind=m.kind.value,
        prompt=m.prompt,
        url=unsigned_url(c.attachment.url),
        raw_prompt=m.raw_prompt,
        params=dict(m.params),
        width=f.width,
        height=f.height,
        format=image_format,
        file_size=file_size,
        sha256=sha256,
        phash=f"{f.phash:016x}",
        phash_impl=f.phash_impl,
        nsfw_score=None if np.isnan(score) else score,
        nsfw_scorer=f.nsfw_scorer,
    )


def to_rejection(c: Candidate, decision: str) -> Rejection:
    m = c.message
    return Rejection(
        key=c.key,
        message_id=m.id,
        channel_id=m.channel_id,
        attachment_id=c.attachment_id,
        tile=c.tile,
        timestamp=m.timestamp,
        kind=m.kind.value,
        prompt=m.prompt,
        decision=decision,
        sha256=c.sha256,
    )


def unsigned_url(url: str) -> str:
    """The attachment URL without Discord's expiring `ex`/`is`/`hm` signature."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SIGNATURE_PARAMS]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Downloadable:
    """Which attachments of a raw message (either shape) pass the message steps, parents ignored:
    the collectors download only these (`download = "filtered"`; a parent can only add a drop)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pipeline = Pipeline(build(settings))

    def __call__(self, message: dict) -> list[int]:
        try:
            parsed = parse_message(message, self.settings.bot_ids)
        except MalformedMessageError:
            return []
        pending = [Pending(c) for c in candidates_of(parsed, self.settings) if c.attachment is not None]
        self.pipeline.advance(pending, Needs.MESSAGE)
        return list(dict.fromkeys(p.candidate.attachment_id for p in pending if not p.decided))


def clean(raw: RawStore, store: Store, settings: Settings) -> CleanReport:
    """The whole clean stage in this process (tests, benchmarks): features computed `clean_batch`
    images at a time by `FeatureStore` (its own worker processes), chunk after chunk."""
    from midshard.cleaners.features import FeatureStore, feature_workers

    cleaner = Cleaner(raw, DecisionStore(store), settings)
    features = FeatureStore(store, settings)
    with feature_workers(settings):  # the workers live for this stage only
        for chunk in cleaner.chunks():
            keys = chunk.feature_keys()
            found: dict[Key, Features] = {}
            for start in range(0, len(keys), settings.clean_batch):
                found.update(features.compute(keys[start : start + settings.clean_batch], raw))
            cleaner.decide(chunk, found)
    return cleaner.report
