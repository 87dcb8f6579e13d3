"""Is a generation image-conditioned? (docs/parsing-rules.md section 4)

JourneyDB keeps only text-to-image generations: the pixels must depend on the prompt text alone.
A message is conditioned on its own when it carries image prompts or reference-image URLs
(`--sref/--cref/--oref/--end <url>`; `--sref <code>` is a style code, not an image) or when its
kind edits an earlier image (blend, variation, remix, vary region, zoom, pan, animate). Upscales
and `Image #N` crops are not conditioned themselves but inherit from their parent, followed through
`message_reference` transitively; a parent we never saw leaves the message's own answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from midshard.records import Kind

CONDITIONED_KINDS = frozenset({Kind.VARIATION, Kind.REMIX, Kind.ZOOM, Kind.PAN, Kind.BLEND, Kind.VIDEO})


def own_conditioning(kind: Kind, image_urls: tuple[str, ...]) -> bool:
    """Conditioning decided by the message alone (`kind` = the finished job's kind)."""
    return kind in CONDITIONED_KINDS or bool(image_urls)


class Lineage(NamedTuple):
    """What inheritance needs to know about one message."""

    conditioned: bool  # on its own
    parent_id: int | None


class Inheritance:
    """Resolves inherited conditioning through parents found by `lookup` (None = not stored).

    Results are memoised; cycles and chains of any length are walked iteratively.
    """

    def __init__(self, lookup: Callable[[int], Lineage | None]) -> None:
        self._lookup = lookup
        self._resolved: dict[int, bool] = {}

    def conditioned(self, lineage: Lineage) -> bool:
        """Own conditioning, or that of the nearest conditioned ancestor we have."""
        if lineage.conditioned:
            return True
        chain: list[int] = []
        current = lineage.parent_id
        answer = False
        while current is not None and current not in chain:
            if current in self._resolved:
                answer = self._resolved[current]
                break
            parent = self._lookup(current)
            if parent is None:
                break
            chain.append(current)
            if parent.conditioned:
                answer = True
                break
            current = parent.parent_id
        for message_id in chain:
            self._resolved[message_id] = answer
        return answer
