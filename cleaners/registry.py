"""The ordered step registry: the one list that the pipeline, `midshard explain`, the funnel order
and the docs' step table (docs/parsing-rules.md section 2, checked by a test) all follow.

Adding a filter means writing one `Step` subclass (with its test) and putting it here, in order.
"""

from __future__ import annotations

from midshard.cleaners.dedup import KeptIndex, NearDuplicate
from midshard.cleaners.media_steps import (
    Decodes,
    HasFeatures,
    IntactMedia,
    KnownFormat,
    NonEmptyFile,
    NsfwThreshold,
    PixelLimit,
    Resolution,
    SingleFrame,
)
from midshard.cleaners.message_steps import (
    DeclaredImage,
    DeclaredSize,
    FromMidjourney,
    GridPolicy,
    HasAttachment,
    HasPrompt,
    IsFinished,
    IsGeneration,
    Stored,
    TextOnly,
)
from midshard.cleaners.steps import Step
from midshard.records import Reason
from midshard.settings import Settings

STEPS: tuple[type[Step], ...] = (
    FromMidjourney,
    IsGeneration,
    IsFinished,
    TextOnly,
    HasPrompt,
    GridPolicy,
    HasAttachment,
    DeclaredImage,
    DeclaredSize,
    Stored,
    HasFeatures,
    IntactMedia,
    NonEmptyFile,
    KnownFormat,
    PixelLimit,
    SingleFrame,
    Resolution,
    Decodes,
    NearDuplicate,
    NsfwThreshold,
)


def build(settings: Settings, kept: KeptIndex | None = None) -> list[Step]:
    """Ready steps, in order; `kept` answers the dedup step (the pipeline's index of kept hashes,
    `explain`'s persisted verdicts; None where no candidate gets that far)."""
    return [step(settings, kept) if step is NearDuplicate else step(settings) for step in STEPS]


def _funnel_order() -> tuple[str, ...]:
    order = dict.fromkeys(reason.value for step in STEPS for reason in step.reasons)
    assert set(order) == {reason.value for reason in Reason}, "every reason code belongs to a step"
    return (*order, "keep")


# Reason codes in the order of the first step that produces each, then "keep".
FUNNEL_ORDER = _funnel_order()


def funnel_key(decision: str) -> str:
    """Count key of a decision string: its reason code; download failures keep their cause."""
    code = decision.split(":", 1)[0]
    return decision if code == Reason.DOWNLOAD_FAILED else code


_RANK = {code: n for n, code in enumerate(FUNNEL_ORDER)}


def funnel_rank(key: str) -> tuple[int, str]:
    """Sort key of a `funnel_key` (or a bare reason code): step order, `keep` last."""
    return _RANK[key.split(":")[0]], key


def in_funnel_order(counts: dict[str, int]) -> dict[str, int]:
    """Counts keyed by `funnel_key`, non-zero ones only, in step order, `keep` last."""
    return {k: counts[k] for k in sorted((k for k, n in counts.items() if n), key=funnel_rank)}
