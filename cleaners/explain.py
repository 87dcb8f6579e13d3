"""`midshard explain`: why would this message be kept or dropped?

Input: Discord message JSON, one object per line (API or DiscordChatExporter shape). Output: one
JSON object per message with exactly `id, kind, image_conditioned, prompt, params, image_urls,
decision`; a line that cannot be read gives `{"line": n, "error": "..."}` and processing goes on.

Decisions are the pipeline's (same steps, same order). Without media, the message steps decide
(`from_midjourney` to `declared_size`), then `resolution` on the dimensions the message declares
(a drop made that way says `:message_only`).
With a data root (`--raw DIR`), parents are also looked up in its raw store, and a stored
attachment is decided from the attachment index, the cached features and the persisted
decisions, exactly as the pipeline decided it. Parents may also be other lines of the input (in
any order), so the whole input is read before the first answer. The message-only path imports
neither Prefect nor onnxruntime.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from midshard.cleaners.conditioning import Inheritance, Lineage
from midshard.cleaners.grids import tile_size
from midshard.cleaners.images import resolution_decision
from midshard.cleaners.parse import MalformedMessageError, parse_message
from midshard.cleaners.registry import build
from midshard.cleaners.steps import (
    BEFORE_MEDIA,
    EVERYTHING,
    Candidate,
    Needs,
    Pending,
    Pipeline,
    candidates_of,
)
from midshard.records import Decision, Kind, ParsedMessage, Reason, drop
from midshard.settings import Settings

if TYPE_CHECKING:
    from midshard.cleaners.decisions import DecisionStore
    from midshard.raw_store import AttachmentResult

MESSAGE_ONLY = "message_only"


def explain_lines(
    lines: Iterable[bytes | str], settings: Settings, raw_root: str | None = None
) -> Iterator[dict]:
    """One output object per non-blank input line, in input order."""
    media = MediaContext(raw_root, settings) if raw_root else None
    entries: list[ParsedMessage | dict] = []
    lineage: dict[int, Lineage] = {}
    for number, line in enumerate(lines, 1):
        entry = _parse_line(number, line, settings)
        if isinstance(entry, ParsedMessage):
            lineage[entry.id] = Lineage(entry.image_conditioned, entry.parent_id)
        if entry is not None:
            entries.append(entry)

    def lookup(message_id: int) -> Lineage | None:
        found = lineage.get(message_id)
        return found if found is not None or media is None else media.lineage(message_id)

    inheritance = Inheritance(lookup)
    pipeline = Pipeline(build(settings, media.verdicts if media is not None else None))
    for entry in entries:
        if isinstance(entry, dict):
            yield entry
            continue
        if entry.kind is not Kind.NOT_MIDJOURNEY and inheritance.conditioned(
            Lineage(entry.image_conditioned, entry.parent_id)
        ):
            entry = replace(entry, image_conditioned=True)
        yield explanation(entry, settings, pipeline, media)


def explanation(
    message: ParsedMessage, settings: Settings, pipeline: Pipeline, media: MediaContext | None = None
) -> dict:
    """The output object of one parsed message (conditioning already resolved)."""
    decisions = [candidate_decision(c, settings, pipeline, media) for c in candidates_of(message, settings)]
    decision = next((d for d in decisions if d.kept), decisions[0])
    return {
        "id": str(message.id),
        "kind": message.kind.value,
        "image_conditioned": message.image_conditioned,
        "prompt": message.prompt,
        "params": message.params,
        "image_urls": list(message.image_urls),
        "decision": str(decision),
    }


def candidate_decision(
    candidate: Candidate, settings: Settings, pipeline: Pipeline, media: MediaContext | None
) -> Decision:
    """The pipeline's steps, as far as what is known allows; then the message-only answer."""
    pending = Pending(candidate)
    pipeline.advance([pending], Needs.MESSAGE)
    if media is not None and not pending.decided:
        media.complete(pending, pipeline)
    if pending.decision is not None:
        return pending.decision
    return declared_resolution(candidate, settings)


def declared_resolution(c: Candidate, settings: Settings) -> Decision:
    """The resolution rule on the dimensions the message declares (a tile: its box of them)."""
    a = c.attachment
    if a is None or not a.width or not a.height:
        return Decision()
    width, height = tile_size(a.width, a.height, c.tile)
    decision = resolution_decision(width, height, settings.min_pixels, settings.min_side)
    return decision if decision.kept else drop(Reason.TOO_SMALL, MESSAGE_ONLY)


def _parse_line(number: int, line: bytes | str, settings: Settings) -> ParsedMessage | dict | None:
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as error:
        return {"line": number, "error": f"not UTF-8: {error}"}
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    try:
        return parse_message(json.loads(text), settings.bot_ids)
    except json.JSONDecodeError as error:
        return {"line": number, "error": f"invalid JSON: {error}"}
    except MalformedMessageError as error:
        return {"line": number, "error": str(error)}
    except RecursionError:
        return {"line": number, "error": "invalid JSON: nested too deeply"}


class MediaContext:
    """What a data root knows beyond the message: parents, stored attachments, features, decisions.

    Everything is looked up on demand (the raw batch that can hold a message id, one feature,
    one decision), so explaining a few messages of a huge root reads little of it.
    """

    def __init__(self, root: str, settings: Settings) -> None:
        from midshard.cleaners.decisions import DecisionStore
        from midshard.cleaners.features import FeatureStore
        from midshard.raw_store import RawStore, parse_batch_name
        from midshard.store import Store

        store = Store(root)
        self.settings = settings
        self.raw = RawStore(store)
        self.feature_store = FeatureStore(store, settings)
        self.verdicts = PersistedVerdicts(DecisionStore(store))
        batches = sorted(
            (*parse_batch_name(path), channel, path)
            for channel in self.raw.channels()
            for path in self.raw.message_batches(channel)
        )
        self._batches = batches
        self._starts = [first for first, *_ in batches]
        self._lineage: dict[int, Lineage] = {}
        self._read: set[str] = set()
        self._attachments: dict[str, dict[int, AttachmentResult]] = {}  # per batch, read once

    def _batches_holding(self, message_id: int) -> list[tuple[int, str]]:
        """(channel, batch path) of the batches whose id range holds `message_id`."""
        end = bisect.bisect_right(self._starts, message_id)
        return [(c, p) for first, last, c, p in self._batches[:end] if first <= message_id <= last]

    def lineage(self, message_id: int) -> Lineage | None:
        """A raw-store message's own conditioning and parent (reads only the batches that can hold it)."""
        if message_id not in self._lineage:
            for channel, path in self._batches_holding(message_id):
                if path in self._read:
                    continue
                self._read.add(path)
                for message in self.raw.read_batch(path):
                    parsed = _parse_quietly(message, self.settings, channel)
                    if parsed is not None:
                        self._lineage[parsed.id] = Lineage(parsed.image_conditioned, parsed.parent_id)
        return self._lineage.get(message_id)

    def complete(self, pending: Pending, pipeline: Pipeline) -> None:
        """Run the media steps on what the root knows: the index entry, then the features."""
        stored = self.stored(pending.candidate)
        if stored is None:
            return
        pending.candidate = replace(pending.candidate, stored=stored)
        pipeline.advance([pending], BEFORE_MEDIA)
        key = (pending.candidate.sha256, pending.candidate.tile)
        features = None if pending.decided else self.feature_store.get([key]).get(key)
        if features is not None:
            pending.candidate = replace(pending.candidate, features=features)
            pipeline.advance([pending], EVERYTHING)

    def stored(self, candidate: Candidate) -> AttachmentResult | None:
        """The attachment index's entry for the candidate's attachment, or None if it has none."""
        assert candidate.attachment is not None
        for channel, path in self._batches_holding(candidate.message.id):
            if path not in self._attachments:
                self._attachments[path] = self.raw.batch_attachment_results(channel, path) or {}
            found = self._attachments[path].get(candidate.attachment.id)
            if found is not None:
                return found
        return None


class PersistedVerdicts:
    """Dedup's answers as the pipeline recorded them (explain does not re-run dedup)."""

    def __init__(self, decisions: DecisionStore) -> None:
        self.decisions = decisions
        self._duplicates: dict[str, str] | None = None  # key -> the kept key it duplicates

    def run(self, keys: list[str], phash: np.ndarray, dhash: np.ndarray) -> list[str | None]:
        if self._duplicates is None:  # read once, on the first candidate that reaches dedup
            self._duplicates = self.decisions.duplicates()
        return [self._duplicates.get(key) for key in keys]


def _parse_quietly(message: Any, settings: Settings, channel_id: int) -> ParsedMessage | None:
    try:
        return parse_message(message, settings.bot_ids, channel_id)
    except MalformedMessageError:
        return None


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
