"""`midshard explain`: why would this message be kept or dropped?

Input: Discord message JSON, one object per line (API or DiscordChatExporter shape). Output: one
JSON object per message with exactly `id, kind, image_conditioned, prompt, params, image_urls,
decision`; a line that cannot be read gives `{"line": n, "error": "..."}` and processing goes on.

Decisions are the pipeline's (same steps, same order). Without media, steps 1-8 come from the
message and step 14 from the dimensions it declares (a drop made that way says `:message_only`).
With a data root (`--raw DIR`), parents are also looked up in its raw store, and a stored
attachment is decided from the attachment index, the cached features and the persisted
decisions, exactly as the pipeline decided it. Parents may also be other lines of the input (in
any order), so the whole input is read before the first answer. The message-only path imports
neither Prefect nor onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from midshard.cleaners.conditioning import Inheritance, Lineage
from midshard.cleaners.parse import MalformedMessageError, parse_message
from midshard.cleaners.steps import (
    MESSAGE_STEPS,
    Candidate,
    candidates_of,
    declared_resolution,
    run_steps,
)
from midshard.records import Decision, Kind, ParsedMessage
from midshard.settings import Settings

OUTPUT_FIELDS = ("id", "kind", "image_conditioned", "prompt", "params", "image_urls", "decision")


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
    for entry in entries:
        if isinstance(entry, dict):
            yield entry
            continue
        if entry.kind is not Kind.NOT_MIDJOURNEY and inheritance.conditioned(
            Lineage(entry.image_conditioned, entry.parent_id)
        ):
            entry = replace(entry, image_conditioned=True)
        yield explanation(entry, settings, media)


def explanation(message: ParsedMessage, settings: Settings, media: MediaContext | None = None) -> dict:
    """The output object of one parsed message (conditioning already resolved)."""
    decisions = [candidate_decision(c, settings, media) for c in candidates_of(message, settings)]
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


def candidate_decision(candidate: Candidate, settings: Settings, media: MediaContext | None) -> Decision:
    decision = run_steps(candidate, MESSAGE_STEPS, settings)
    if not decision.kept:
        return decision
    known = media.decision(candidate) if media else None
    return known if known is not None else declared_resolution(candidate, settings)


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
    """What a data root knows beyond the message: parents, stored attachments, decisions."""

    def __init__(self, root: str, settings: Settings) -> None:
        from midshard.cleaners.features import FeatureStore
        from midshard.cleaners.pipeline import DecisionStore
        from midshard.raw_store import RawStore, parse_batch_name
        from midshard.store import Store

        store = Store(root)
        self.settings = settings
        self.raw = RawStore(store)
        self.features = FeatureStore(store, settings)
        self.attachments = self.raw.attachment_results()
        self.decisions = DecisionStore(store)
        self._rows: dict[str, dict] | None = None
        self._batches = [
            (*parse_batch_name(path), channel, path)
            for channel in self.raw.channels()
            for path in self.raw.message_batches(channel)
        ]
        self._lineage: dict[int, Lineage] = {}
        self._read: set[str] = set()

    def lineage(self, message_id: int) -> Lineage | None:
        """A raw-store message's own conditioning and parent (reads only the batches that can hold it)."""
        if message_id not in self._lineage:
            for first, last, channel, path in self._batches:
                if first <= message_id <= last and path not in self._read:
                    self._read.add(path)
                    for message in self.raw.read_batch(path):
                        parsed = _parse_quietly(message, self.settings, channel)
                        if parsed is not None:
                            self._lineage[parsed.id] = Lineage(parsed.image_conditioned, parsed.parent_id)
        return self._lineage.get(message_id)

    def decision(self, candidate: Candidate) -> Decision | None:
        """Steps 9-17 from the data root, or None when it does not know this attachment."""
        from midshard.cleaners.nsfw import nsfw_decision
        from midshard.cleaners.steps import media_checks, stored

        assert candidate.attachment is not None
        result = self.attachments.get(candidate.attachment.id)
        if result is None:
            return None
        decision = stored(result.error, result.sha256)
        if not decision.kept:
            return decision
        row = self.rows().get(candidate.key)
        if row is not None and row["decision"].startswith("duplicate_of"):
            return Decision.parse(row["decision"])
        feature = self.features.get([(result.sha256, candidate.tile)]).get((result.sha256, candidate.tile))
        if feature is None:
            return None
        decision = media_checks(feature)
        return (
            decision if not decision.kept else nsfw_decision(feature.nsfw_score, self.settings.nsfw_threshold)
        )

    def rows(self) -> dict[str, dict]:
        if self._rows is None:
            self._rows = self.decisions.rows()
        return self._rows


def _parse_quietly(message: Any, settings: Settings, channel_id: int) -> ParsedMessage | None:
    try:
        return parse_message(message, settings.bot_ids, channel_id)
    except MalformedMessageError:
        return None


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
