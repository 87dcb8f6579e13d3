"""The step interface: every cleaning rule is one `Step`, run in the registry's order by `Pipeline`.

A step looks at one candidate (one attachment, or one grid tile, of one message) and returns `KEEP`
or one drop `Decision` carrying one of its reason codes — like datatrove's filters, with per-step
counters. What a step needs says when it can run: the message alone, the attachment index (is the
file stored?), the image features (header, decode, hashes, NSFW score), or the index of hashes kept
so far (dedup). The pipeline runs every step whose needs are available and leaves each candidate
at the first step it cannot run yet, so the same chain serves the planning phase (message and
attachment index), the deciding phase (everything) and `midshard explain` (whatever it knows).

A step decides one candidate in `__call__`; `run` decides a whole batch (a step whose work is
cheaper in bulk, dedup, overrides it and keeps the same answers).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Flag, auto
from typing import TYPE_CHECKING, ClassVar

from midshard.raw_store import AttachmentResult
from midshard.records import KEEP, Attachment, Decision, Kind, ParsedMessage, Reason, candidate_key
from midshard.settings import Settings

if TYPE_CHECKING:
    from midshard.cleaners.features import Features


class Needs(Flag):
    """What a step reads besides the settings."""

    MESSAGE = auto()  # the parsed message (conditioning already inherited)
    STORED = auto()  # the attachment index: is the file in the media store, or why not
    FEATURES = auto()  # the image's features (header, decode outcome, hashes, NSFW score)
    KEPT_INDEX = auto()  # the hashes of everything screened and kept so far (dedup)


BEFORE_MEDIA = Needs.MESSAGE | Needs.STORED  # what a candidate has before its image is examined
EVERYTHING = BEFORE_MEDIA | Needs.FEATURES | Needs.KEPT_INDEX


@dataclass(frozen=True, slots=True)
class Candidate:
    """One attachment (or grid tile) of one message, with what is known about it so far."""

    key: str
    message: ParsedMessage
    attachment_index: int
    tile: int  # 0 = whole image, 1-4 = grid tile
    attachment: Attachment | None
    stored: AttachmentResult | None = None  # the attachment index's entry, once looked up
    features: Features | None = None  # once computed (or read from the feature cache)

    @property
    def attachment_id(self) -> int:
        return self.attachment.id if self.attachment else 0

    @property
    def sha256(self) -> str:
        """The stored file's sha256 ("" until the attachment index says it is stored)."""
        return self.stored.sha256 if self.stored is not None else ""


def candidates_of(message: ParsedMessage, settings: Settings) -> list[Candidate]:
    """One candidate per attachment (tiles 1-4 of each for a grid when grids are split)."""
    if not message.attachments:
        return [Candidate(candidate_key(message.id), message, 0, 0, None)]
    tiles = (1, 2, 3, 4) if message.kind is Kind.GRID and settings.grids == "split" else (0,)
    return [
        Candidate(candidate_key(message.id, index, tile), message, index, tile, attachment)
        for index, attachment in enumerate(message.attachments[:100])
        for tile in tiles
    ]


class Step(ABC):
    """One rule. Subclasses set `name`, `reasons` and `needs`, and implement `__call__`."""

    name: ClassVar[str]
    reasons: ClassVar[tuple[Reason, ...]]
    needs: ClassVar[Needs] = Needs.MESSAGE

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def __call__(self, candidate: Candidate) -> Decision:
        """`KEEP`, or a drop with one of `reasons`."""

    def run(self, candidates: Sequence[Candidate]) -> list[Decision]:
        """Decisions of a batch, in its order."""
        return [self(candidate) for candidate in candidates]


@dataclass(slots=True)
class StepStats:
    """What one step saw, dropped and cost in a run (datatrove-style)."""

    seen: int = 0
    dropped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"seen": self.seen, "dropped": self.dropped, "seconds": round(self.seconds, 3)}


@dataclass(slots=True)
class Pending:
    """A candidate on its way through the chain: the step it waits at, or its final decision."""

    candidate: Candidate
    at: int = 0  # index of the next step to run
    decision: Decision | None = None

    @property
    def decided(self) -> bool:
        return self.decision is not None


@dataclass
class Pipeline:
    """Runs steps in order over batches of candidates, counting per step."""

    steps: Sequence[Step]
    stats: dict[str, StepStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stats = {step.name: StepStats() for step in self.steps}

    def advance(self, batch: Sequence[Pending], available: Needs) -> None:
        """Run every step whose needs are `available` over the undecided candidates of `batch`,
        in order; a candidate stops at its first drop, or at the first step it cannot run yet."""
        for index, step in enumerate(self.steps):
            here = [p for p in batch if not p.decided and p.at == index]
            if not here:
                continue
            if step.needs & ~available:
                return  # these and everything behind them wait for what this step needs
            stats = self.stats[step.name]
            started = time.perf_counter()
            decisions = step.run([p.candidate for p in here])
            stats.seconds += time.perf_counter() - started
            stats.seen += len(here)
            for pending, decision in zip(here, decisions, strict=True):
                if decision.kept:
                    pending.at = index + 1
                else:
                    pending.decision = decision
                    stats.dropped += 1
        for pending in batch:
            if not pending.decided:
                pending.decision = KEEP
