"""Image conditioning, inherited through `message_reference` in a real raw store; the message steps
before any media."""

from __future__ import annotations

from pathlib import Path

import pytest
from mj_messages import USER_ID, api_message, attachment, snowflake, to_dce

from midshard.cleaners.conditioning import Inheritance, Lineage, own_conditioning
from midshard.cleaners.decisions import DecisionStore
from midshard.cleaners.pipeline import Cleaner, Downloadable
from midshard.cleaners.steps import Pending
from midshard.raw_store import AttachmentResult, RawStore
from midshard.records import Kind, candidate_key
from midshard.settings import Settings
from midshard.store import Store

M = f"<@{USER_ID}>"
S = "https://s.mj.run"
CHANNEL = 1120568025993715764


def _raw(tmp_path: Path, messages: list[dict], results: list[AttachmentResult] = ()) -> RawStore:
    raw = RawStore(Store(str(tmp_path / "root")))
    # two batches, the parents in the later one: inheritance must not depend on reading order
    half = len(messages) // 2
    for part in (messages[half:], messages[:half]):
        path = raw.write_message_batch(CHANNEL, part)
        ids = {int(m["id"]) for m in part}  # each batch's attachment index holds its own attachments
        raw.write_attachment_results(CHANNEL, path, [r for r in results if r.message_id in ids])
    return raw


def _plan(raw: RawStore, settings: Settings) -> list[Pending]:
    """Every candidate of the raw store not decided yet, after the steps before the features."""
    cleaner = Cleaner(raw, DecisionStore(raw.store), settings)
    return [pending for chunk in cleaner.chunks() for pending in chunk.pending]


def test_own_conditioning() -> None:
    assert not own_conditioning(Kind.GRID, ())
    assert not own_conditioning(Kind.UPSCALE, ())
    assert own_conditioning(Kind.GRID, (f"{S}/x",))
    assert all(own_conditioning(k, ()) for k in (Kind.VARIATION, Kind.REMIX, Kind.ZOOM, Kind.PAN, Kind.BLEND))
    assert own_conditioning(Kind.VIDEO, ())


def test_inheritance_walks_chains_and_survives_cycles() -> None:
    table = {
        1: Lineage(True, None),
        2: Lineage(False, 1),
        3: Lineage(False, 2),
        5: Lineage(False, 6),
        6: Lineage(False, 5),
        7: Lineage(False, 99),
    }
    calls: list[int] = []

    def lookup(message_id: int) -> Lineage | None:
        calls.append(message_id)
        return table.get(message_id)

    inherit = Inheritance(lookup)
    assert inherit.conditioned(Lineage(False, 3))
    assert inherit.conditioned(Lineage(False, 2)) and calls == [3, 2, 1]  # memoised
    assert not inherit.conditioned(Lineage(False, 5))  # a cycle ends the walk
    assert not inherit.conditioned(Lineage(False, 7))  # a parent we never stored: the message alone
    assert not inherit.conditioned(Lineage(False, None))


@pytest.mark.parametrize("shape", ["api", "dce"])
def test_inheritance_through_the_raw_store(tmp_path: Path, shape: str) -> None:
    convert = to_dce if shape == "dce" else (lambda m: m)
    messages = [
        api_message(1, f"**a fox --v 5** - {M} (fast)"),  # text-only grid
        api_message(2, f"**a fox --v 5** - Image #1 {M}", parent=1),  # its crop: kept
        api_message(3, f"**a fox --v 5** - Variations (Strong) by {M} (fast)", parent=2),  # edit
        api_message(4, f"**a fox --v 5** - Image #2 {M}", parent=3),  # crop of the edit: inherits
        api_message(5, f"**a fox --v 5** - Upscaled (Subtle) by {M} (fast)", parent=4),  # two levels down
        api_message(6, f"**<{S}/abcdefghijk> a fox** - {M} (fast)"),  # image prompt
        api_message(7, f"**a fox** - Image #3 {M}", parent=6),
        api_message(8, f"**a fox** - Image #4 {M}", parent=999),  # parent never stored
    ]
    raw = _raw(tmp_path, [convert(m) for m in messages])
    settings = Settings(grids="split")
    candidates = {p.candidate.message.id: p for p in _plan(raw, settings)}
    conditioned = {n: candidates[int(snowflake(n))].candidate.message.image_conditioned for n in range(1, 9)}
    assert conditioned == {1: False, 2: False, 3: True, 4: True, 5: True, 6: True, 7: True, 8: False}
    decisions = {n: str(candidates[int(snowflake(n))].decision) for n in range(2, 9)}
    assert decisions == {
        2: "download_failed:not_downloaded",
        3: "image_conditioned",
        4: "image_conditioned",
        5: "image_conditioned",
        6: "image_conditioned",
        7: "image_conditioned",
        8: "download_failed:not_downloaded",
    }


@pytest.mark.slow
def test_planning_runs_the_message_steps_and_stored(tmp_path: Path) -> None:
    small = attachment(51, width=512, height=512)
    messages = [
        api_message(1, f"**a fox** - {M} (fast)"),  # grid, skipped
        api_message(2, f"**a fox** - Image #1 {M}", parent=1),  # stored: undecided
        api_message(3, f"**a fox** - Image #2 {M}", parent=1, attachments=[]),
        api_message(
            4,
            f"**a fox** - Image #3 {M}",
            parent=1,
            attachments=[attachment(41, filename="a.mp4", content_type="video/mp4")],
        ),
        api_message(5, f"**a fox** - Image #4 {M}", parent=1, attachments=[attachment(42, size=10**9)]),
        api_message(6, f"**a fox** - Image #1 {M}", parent=1, attachments=[small, attachment(52)]),
        api_message(7, f"**a fox** - {M} (12%) (fast)"),
        api_message(8, "hello", author_id=USER_ID),
        api_message(9, "You have successfully rated [this job](<https://x>) with 😍", attachments=[]),
        api_message(10, f"**a fox** - Image #1 {M}", parent=1, attachments=[attachment(101, filename="b")]),
    ]
    results = [
        AttachmentResult(21, int(snowflake(2)), sha256="ab" * 32),
        AttachmentResult(51, int(snowflake(6)), error="http_404"),
        AttachmentResult(52, int(snowflake(6)), error="too_large"),
    ]
    raw = _raw(tmp_path, messages, results)
    settings = Settings()
    out = _plan(raw, settings)
    keys = [p.candidate.key for p in out]
    assert keys == sorted(keys)
    got = {
        (p.candidate.message.id, p.candidate.attachment_index, p.candidate.tile): (
            str(p.decision),
            p.candidate.sha256,
        )
        for p in out
    }
    k = lambda n: int(snowflake(n))  # noqa: E731
    assert got == {
        (k(1), 0, 0): ("grid", ""),
        (k(2), 0, 0): ("None", "ab" * 32),  # stored: its features decide next
        (k(3), 0, 0): ("no_attachment", ""),
        (k(4), 0, 0): ("not_an_image", ""),
        (k(5), 0, 0): ("oversized_file", ""),
        (k(6), 0, 0): ("download_failed:http_404", ""),
        (k(6), 1, 0): ("oversized_file", ""),
        (k(7), 0, 0): ("progress", ""),
        (k(8), 0, 0): ("not_midjourney", ""),
        (k(9), 0, 0): ("not_a_generation", ""),
        (k(10), 0, 0): ("download_failed:not_downloaded", ""),  # no extension, no type: header decides
    }
    # a split grid yields four tiles
    tiles = [p for p in _plan(raw, Settings(grids="split")) if p.candidate.message.id == k(1)]
    assert [p.candidate.key for p in tiles] == [candidate_key(k(1), 0, tile) for tile in (1, 2, 3, 4)]
    assert {str(p.decision) for p in tiles} == {"download_failed:not_downloaded"}
    # decided candidates are not planned again (their batch is settled: its media is done), except
    # one whose features are missing (a worker died on it): download_failed:no_features, retried
    cleaner = Cleaner(raw, DecisionStore(raw.store), settings)
    for chunk in cleaner.chunks():
        cleaner.decide(chunk, {})
    assert [p.candidate.key for p in _plan(raw, settings)] == [candidate_key(k(2))]


def test_downloadable_attachments_ignores_parents() -> None:
    downloadable = Downloadable(Settings())
    crop = api_message(2, f"**a fox** - Image #1 {M}", parent=1, attachments=[attachment(7), attachment(8)])
    assert downloadable(crop) == [7, 8]
    assert downloadable(to_dce(crop)) == [7, 8]
    grid = api_message(1, f"**a fox** - {M} (fast)", attachments=[attachment(9)])
    assert downloadable(grid) == []
    assert Downloadable(Settings(grids="split"))(grid) == [9]
    assert downloadable(api_message(3, f"**a fox** - Variations by {M} (fast)")) == []
    assert downloadable({"id": "x"}) == []
    assert downloadable(api_message(4, "hi", author_id=USER_ID)) == []
