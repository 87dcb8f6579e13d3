"""Media downloads against the emulator's CDN: faults, expired and refused links, size rules."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from collector_kit import TOKEN, collect_settings, emulator_config, emulator_process, running
from pydantic import SecretStr

from midshard.collectors.collect import collect_history, collect_media
from midshard.collectors.history import DiscordSession, LinkRefresher
from midshard.collectors.media import MediaDownloader, attachment_refs, plan_downloads
from midshard.emulator.faults import Faults
from midshard.raw_store import AttachmentResult, RawStore
from midshard.settings import Settings
from midshard.store import Store


@pytest.mark.slow
def test_media_survives_faults_and_expired_links(tmp_path: Path, emulator_cache: Path) -> None:
    config = emulator_config(
        emulator_cache,
        messages=100,
        link_ttl=1.0,
        fault_5xx=0.1,  # also hits API calls, which discord.py retries after 1 s, 3 s, ...
        fault_reset=0.2,
        fault_truncate=0.2,
        gone_rate=0.15,
    )
    with running(config) as emulator:
        root = tmp_path / "data"
        settings = collect_settings(emulator, root, download_retries=12)
        for channel_id in emulator.channel_ids:
            collect_history(settings, channel_id)  # messages only: their links are now listed
        time.sleep(1.5)  # ... and expired
        results: dict[int, AttachmentResult] = {}
        for channel_id in emulator.channel_ids:
            results |= {r.attachment_id: r for r in collect_media(settings, channel_id)}

        raw = RawStore(Store(str(root)))
        gone = Faults(config).gone
        outcomes = {"stored": 0, "gone": 0, "too_large": 0}
        for _, message in raw.iter_messages():
            for attachment in message["attachments"]:
                result = results[int(attachment["id"])]
                if attachment["size"] > settings.max_file_size:
                    assert result.error == "too_large"
                    outcomes["too_large"] += 1
                elif gone(int(attachment["id"])):
                    assert result.error == "gone"
                    outcomes["gone"] += 1
                else:  # every servable attachment is stored, complete and content-addressed
                    data = raw.read_media(result.sha256)
                    assert len(data) == attachment["size"]
                    assert hashlib.sha256(data).hexdigest() == result.sha256
                    outcomes["stored"] += 1
        assert all(outcomes.values()), outcomes
        counters = emulator.stats()
        assert all(counters["faults"][kind] > 0 for kind in ("5xx", "reset", "truncate"))
        assert counters["refreshed_urls"] > 0  # expired links were re-signed, not given up
        assert all(raw.pending_media_batches(c) == [] for c in emulator.channel_ids)


def test_refused_links_sizes_and_missing_token(tmp_path: Path, emulator_cache: Path) -> None:
    with running(emulator_config(emulator_cache, channels=1, messages=60)) as emulator:
        root = tmp_path / "data"
        settings = collect_settings(emulator, root)
        channel_id = emulator.channel_ids[0]
        collect_history(settings, channel_id)
        raw = RawStore(Store(str(root)))
        refs = [r for _, m in raw.iter_messages() for r in attachment_refs(m, channel_id)]
        small = min((r for r in refs if r.size), key=lambda r: r.size or 0)  # the smallest file served
        large = max(refs, key=lambda r: r.size or 0)
        assert small.size is not None and large.size is not None
        assert small.size < settings.max_file_size < large.size
        bad_signature = small.url.replace("hm=", "hm=0")
        no_such_file = bad_signature.replace(f"/{small.attachment_id}/", f"/{small.attachment_id + 1}/")
        tampered = replace(small, url=bad_signature)
        unknown = replace(small, attachment_id=small.attachment_id + 1, url=no_such_file)
        wrong_size = replace(small, size=small.size + 1)
        undeclared = replace(large, size=None)

        async def run(settings: Settings, with_token: bool) -> list[AttachmentResult]:
            refs = [tampered, unknown, wrong_size, undeclared]
            if not with_token:
                async with MediaDownloader(settings, raw) as downloader:
                    return [(await downloader.fetch(r))[0] for r in refs]
            async with (
                DiscordSession(settings, SecretStr(TOKEN)) as session,
                MediaDownloader(settings, raw, LinkRefresher(session)) as downloader,
            ):
                fresh = await session.attachment_url(small)  # the re-fetch fallback of refreshing
                assert fresh is not None and fresh.split("?")[0] == small.url.split("?")[0]
                deleted = replace(small, message_id=small.message_id + 1)
                assert await session.attachment_url(deleted) is None
                return [(await downloader.fetch(r))[0] for r in refs]

        tampered_result, unknown_result, mismatch, too_large = asyncio.run(run(settings, True))
        assert raw.read_media(tampered_result.sha256)  # refused -> re-signed -> stored
        assert unknown_result.error == "gone"
        assert mismatch.error == "size_mismatch"
        assert too_large.error == "too_large"  # Content-Length above max_file_size, nothing read

        without_token = asyncio.run(run(settings, False))
        assert [r.error for r in without_token[:2]] == ["expired", "expired"]


@pytest.mark.slow
def test_downloads_stream_to_disk_within_the_memory_cap(tmp_path: Path, emulator_cache: Path) -> None:
    """Files of several MB pass through at most `download_memory` bytes of buffers: no body is
    ever held whole (the allocator has nothing to hoard), and every stored file is complete."""
    with emulator_process(emulator_cache, channels=1, messages=12) as emulator:
        options = {"max_file_size": 64 * 2**20, "download_memory": 2**20, "download_concurrency": 4}
        settings = collect_settings(emulator, tmp_path, **options)
        channel_id = emulator.channel_ids[0]
        collect_history(settings, channel_id)
        tracemalloc.start()
        try:
            results = collect_media(settings, channel_id)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    raw = RawStore(Store(str(tmp_path)))
    sizes = [len(raw.read_media(r.sha256)) for r in results if r.sha256]
    assert len(sizes) == len(results) and max(sizes) > 4 * 2**20 and sum(sizes) > 20 * 2**20
    # the buffers of 4 downloads (1 MiB in all) plus aiohttp's per-connection read buffers
    assert peak < 4 * 2**20 < max(sizes), (peak, max(sizes))


@pytest.mark.slow
def test_collectors_leave_the_choice_of_attachments_to_their_caller(tmp_path: Path) -> None:
    """`download = "filtered"` asks the caller for the filter: the collectors never import the
    cleaners (the layering: collectors -> raw store -> cleaners, one direction)."""
    code = (
        "import sys, midshard.collectors.collect, midshard.collectors.dce;"
        "print(sorted(m for m in sys.modules if m.startswith('midshard.cleaners')))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"

    raw = RawStore(Store(str(tmp_path)))
    with pytest.raises(ValueError, match="selector"):
        MediaDownloader(Settings(root=str(tmp_path)), raw)
    messages = [
        {"id": "11", "attachments": [{"id": "1", "url": "https://cdn.discordapp.com/a"}, {"id": "2"}]},
        {"id": "12", "attachments": [{"id": "1"}, {"id": "3", "url": "x", "size": 7}]},  # 1 again: once
    ]
    wanted, skipped = plan_downloads(messages, 5, lambda message: [2, 3])
    assert [r.attachment_id for r in wanted] == [2, 3] and [r.attachment_id for r in skipped] == [1]
    assert [r.attachment_id for r in plan_downloads(messages, 5, None)[0]] == [1, 2, 3]
    downloader = MediaDownloader(Settings(root=str(tmp_path), download="all"), raw, select=lambda m: [])
    assert downloader.select is None  # "all" fetches everything whatever the filter says


def test_media_into_an_object_store(tmp_path: Path, emulator_cache: Path) -> None:
    """On an fsspec object store (memory:// here) files are uploaded whole from a local temporary
    file, and the journal is republished instead of appended to."""
    with running(emulator_config(emulator_cache, channels=1, messages=30)) as emulator:
        root = f"memory://midshard-media-{tmp_path.name}"
        settings = collect_settings(emulator, tmp_path).model_copy(update={"root": root})
        channel_id = emulator.channel_ids[0]
        collect_history(settings, channel_id)
        results = collect_media(settings, channel_id)
    raw = RawStore(Store(root))
    stored = [r for r in results if r.sha256]
    assert stored and raw.attachment_results(channel_id) == {r.attachment_id: r for r in results}
    for result in stored:
        assert hashlib.sha256(raw.read_media(result.sha256)).hexdigest() == result.sha256
    assert raw.pending_media_batches(channel_id) == []
