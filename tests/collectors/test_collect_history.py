"""History collection against the Discord emulator: ground truth, incremental runs, threads, --since."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from collector_kit import collect_settings, emulator_config, files_under, running, served_message
from rich.console import Console

from midshard import progress
from midshard.collectors.collect import CollectStats, collect
from midshard.collectors.history import lacks_message_content
from midshard.raw_store import AttachmentResult, RawStore
from midshard.snowflakes import snowflake_at
from midshard.store import Store

MESSAGES_ROUTE = "GET /channels/{channel_id}/messages"


def truth_ids(emulator: object) -> dict[int, list[str]]:
    ids: dict[int, list[str]] = defaultdict(list)
    for line in emulator.truth():  # type: ignore[attr-defined]
        ids[int(line["channel_id"])].append(line["id"])
    return ids


def stored(raw: RawStore, channel_id: int) -> list[dict]:
    return [message for _, message in raw.iter_messages(channel_id)]


@pytest.mark.slow
def test_scrape_equals_the_served_channels_and_reruns_fetch_only_new_messages(
    tmp_path: Path, emulator_cache: Path
) -> None:
    with running(emulator_config(emulator_cache, channels=3, messages=150), frozen=True) as emulator:
        root = tmp_path / "data"
        settings = collect_settings(emulator, root)
        stats = collect(settings)
        raw = RawStore(Store(str(root)))
        truth = truth_ids(emulator)

        assert raw.channels() == sorted(emulator.channel_ids)
        assert stats.messages == 450 and not stats.channel_errors
        attachment_ids = set()
        for channel_id in emulator.channel_ids:
            messages = stored(raw, channel_id)
            assert [m["id"] for m in messages] == truth[channel_id]
            served = [served_message(emulator, channel_id, i) for i in range(150)]
            assert [json.dumps(m) for m in messages] == [json.dumps(m) for m in served]  # exactly as received
            assert [len(raw.read_batch(b)) for b in raw.message_batches(channel_id)] == [100, 50]
            assert raw.cursors()[channel_id] == int(messages[-1]["id"])
            attachment_ids |= {int(a["id"]) for m in messages for a in m["attachments"]}
        results = raw.attachment_results()
        assert set(results) == attachment_ids  # every attachment has a sha256 or a reason
        assert stats.media_files == sum(1 for r in results.values() if r.sha256) > 0

        # a second run asks each channel once, gets nothing, downloads nothing, writes nothing
        before = files_under(root)
        emulator.reset_stats()
        again = collect(settings)
        counters = emulator.stats()
        assert counters["routes"][MESSAGES_ROUTE] == 3
        assert counters["messages_served"] == 0 and counters["requests"]["cdn"] == 0
        assert again.messages == 0 and files_under(root) == before

        # after the channels grow, only the new messages are fetched
        emulator.grow(30)
        emulator.reset_stats()
        grown = collect(settings)
        counters = emulator.stats()
        assert counters["messages_served"] == 90 and counters["routes"][MESSAGES_ROUTE] == 3
        assert grown.messages == 90
        truth = truth_ids(emulator)
        for channel_id in emulator.channel_ids:
            assert [m["id"] for m in stored(raw, channel_id)] == truth[channel_id]
            assert len(truth[channel_id]) == 180
        assert raw.pending_media_batches(emulator.channel_ids[0]) == []


def test_threads_are_collected_as_channels_of_their_own(tmp_path: Path, emulator_cache: Path) -> None:
    config = emulator_config(emulator_cache, channels=1, messages=20, threads=3, thread_messages=12)
    with running(config) as emulator:
        root = tmp_path / "data"
        stats = collect(collect_settings(emulator, root, include_threads=True))
        raw = RawStore(Store(str(root)))
        truth = truth_ids(emulator)
        assert len(emulator.thread_ids) == 3 and not stats.channel_errors
        assert raw.channels() == sorted([*emulator.channel_ids, *emulator.thread_ids])
        for channel_id in raw.channels():
            assert [m["id"] for m in stored(raw, channel_id)] == truth[channel_id]


def test_since_starts_a_first_run_at_a_date(tmp_path: Path, emulator_cache: Path) -> None:
    with running(emulator_config(emulator_cache, channels=1, messages=150)) as emulator:
        channel_id = emulator.channel_ids[0]
        all_ids = [int(i) for i in truth_ids(emulator)[channel_id]]
        middle = datetime.fromtimestamp(((all_ids[75] >> 22) + 1420070400000) / 1000, UTC)
        since = (middle + timedelta(days=1)).date()
        expected = [i for i in all_ids if i >= snowflake_at(since)]
        assert 0 < len(expected) < len(all_ids)

        root = tmp_path / "data"
        collect(collect_settings(emulator, root, since=since))
        assert [int(m["id"]) for m in stored(RawStore(Store(str(root))), channel_id)] == expected


def test_pages_without_message_content_are_recognised() -> None:
    ordinary = {"type": 0, "author": {"id": "936929561302675456"}, "attachments": [], "components": []}
    join = {"type": 7, "author": {"id": "5"}, "content": ""}
    own = {"type": 0, "author": {"id": "77"}, "content": "sent by the bot itself"}
    assert lacks_message_content([{**ordinary, "content": ""}, join, own], self_id=77)
    assert not lacks_message_content([{**ordinary, "content": "**a cat** - <@1> (fast)"}], self_id=77)
    assert not lacks_message_content([join], self_id=77)  # system messages are legitimately empty


def test_progress_line_on_a_terminal() -> None:
    screen = io.StringIO()
    stats = CollectStats()
    with progress.shown(Console(file=screen, force_terminal=True, color_system=None, width=160)):
        stats.on_batch(7, 100)
        stats.on_result(AttachmentResult(1, 2, sha256="a" * 64), 3_000_000)
        stats.on_result(AttachmentResult(3, 2, error="gone"), 0)
    assert "history: 1 page · 100 messages" in screen.getvalue()
    assert "downloads: 1 file" in screen.getvalue() and "3.0 MB" in screen.getvalue()
    assert "1 failed" in screen.getvalue()
    assert any(line.startswith("failed attachments, gone: 1 (") for line in stats.summary())
