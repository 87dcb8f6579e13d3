"""Faults fire at their configured rates, deterministically per (seed, kind, path, attempt)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from emulator_client import Reply, fetch, fetch_all

from midshard.emulator import EmulatorConfig

FAST = {"history_limit": 10_000, "global_limit": 10_000}
N = 300


def near(count: int, rate: float, n: int) -> bool:
    """Within 4 binomial standard deviations of the expected count."""
    return abs(count - rate * n) <= 4 * (n * rate * (1 - rate)) ** 0.5 + 1


def statuses(emu, url: str, n: int = N) -> list[int | str]:
    return [r.status if isinstance(r, Reply) else type(r).__name__ for r in fetch_all([("GET", url, {})] * n)]


def test_faults_are_off_by_default(emulator) -> None:
    config = EmulatorConfig()
    rates = (config.fault_5xx, config.fault_reset, config.fault_truncate, config.fault_slow, config.gone_rate)
    assert rates == (0, 0, 0, 0, 0) and config.fault_dribble == 0
    assert config.shared_429_rate == 0 and not config.lying_headers
    with emulator(channels=1, messages=20, **FAST) as emu:
        assert set(statuses(emu, f"{emu.api_base}/users/@me", 100)) == {200}
        faults = {"5xx": 0, "reset": 0, "truncate": 0, "slow": 0, "gone": 0, "dribble": 0}
        assert emu.stats()["faults"] == faults


@pytest.mark.slow
def test_server_errors_and_slow_answers_on_the_api(emulator) -> None:
    config = {"channels": 1, "messages": 5, "fault_5xx": 0.2, "fault_slow": 0.1, "slow_seconds": 0.01, **FAST}
    with emulator(seed=7, **config) as emu:
        first = statuses(emu, f"{emu.api_base}/users/@me")
        stats = emu.stats()
    with emulator(seed=7, **config) as emu:
        again = statuses(emu, f"{emu.api_base}/users/@me")
    with emulator(seed=8, **config) as emu:
        other_seed = statuses(emu, f"{emu.api_base}/users/@me")
    failed = [s for s in first if s != 200]
    assert set(failed) <= {500, 502, 504} and len(set(failed)) == 3
    assert near(len(failed), 0.2, N) and stats["faults"]["5xx"] == len(failed)
    assert near(stats["faults"]["slow"], 0.1, N)
    assert again == first and other_seed != first


def test_decisions_do_not_depend_on_concurrency(emulator) -> None:
    """Which attempt of a path fails is fixed, so 60 concurrent requests fail as often as 60 in a row."""
    config = {"seed": 3, "channels": 1, "messages": 5, "fault_5xx": 0.3, **FAST}

    async def concurrent(url: str) -> list[int]:
        async with aiohttp.ClientSession() as session:

            async def one() -> int:
                async with session.get(url) as response:
                    await response.read()
                    return response.status

            return await asyncio.gather(*(one() for _ in range(60)))

    with emulator(**config) as emu:
        sequential = statuses(emu, f"{emu.api_base}/users/@me", 60)
    with emulator(**config) as emu:
        parallel = asyncio.run(concurrent(f"{emu.api_base}/users/@me"))
    assert sorted(map(str, parallel)) == sorted(map(str, sequential))


def small_image_url(emu) -> dict:
    page = fetch(
        "GET", f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages", params={"limit": "100"}
    ).json()
    images = [
        a for m in page for a in m["attachments"] if a["content_type"].startswith("image/") and a["size"]
    ]
    return min(images, key=lambda a: a["size"])


@pytest.mark.slow
def test_resets_and_truncated_bodies_on_the_cdn(emulator) -> None:
    config = {"channels": 1, "messages": 40, "fault_reset": 0.15, "fault_truncate": 0.15, "fault_5xx": 0.1}
    with emulator(seed=5, **config, **FAST) as emu:
        attachment = small_image_url(emu)
        first = statuses(emu, attachment["url"])
        stats = emu.stats()
    with emulator(seed=5, **config, **FAST) as emu:
        again = statuses(emu, small_image_url(emu)["url"])
    broken = [s for s in first if isinstance(s, str)]
    assert set(broken) <= {"ClientPayloadError", "ServerDisconnectedError", "ClientOSError"}
    assert len(broken) == stats["faults"]["reset"] + stats["faults"]["truncate"]
    assert near(stats["faults"]["5xx"], 0.1, N)
    assert near(stats["faults"]["reset"], 0.15 * 0.9, N)
    assert near(stats["faults"]["truncate"], 0.15 * 0.9 * 0.85, N)
    assert first.count(200) == N - len(broken) - stats["faults"]["5xx"]
    assert again == first


def test_gone_attachments_stay_gone_after_refresh(emulator) -> None:
    with emulator(seed=4, channels=1, messages=120, gone_rate=0.3, **FAST) as emu:
        page = fetch("GET", f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages", params={"limit": "100"})
        attachments = [a for m in page.json() for a in m["attachments"]]
        heads = fetch_all([("HEAD", a["url"], {}) for a in attachments])
        gone = [a for a, reply in zip(attachments, heads, strict=True) if reply.status == 404]
        refreshed = fetch(
            "POST",
            f"{emu.api_base}/attachments/refresh-urls",
            json={"attachment_urls": [a["url"] for a in gone]},
        )
        again = fetch_all([("HEAD", r["refreshed"], {}) for r in refreshed.json()["refreshed_urls"]])
        truth = {c["key"]: c["decision"] for line in emu.truth() for c in line["candidates"]}
    assert near(len(gone), 0.3, len(attachments))
    assert all(reply.status == 404 for reply in again)
    assert all(reply.status == 200 for a, reply in zip(attachments, heads, strict=True) if a not in gone)
    gone_ids = {int(a["id"]) for a in gone}
    flagged = [key for key, decision in truth.items() if decision == "download_failed:gone"]
    assert flagged  # kept-looking candidates whose file is gone are expected to fail so
    page_ids = {int(m["id"]): [int(a["id"]) for a in m["attachments"]] for m in page.json()}
    for key in flagged:
        message_id, number = int(key[:20]), int(key[20:22])
        if message_id in page_ids:
            assert page_ids[message_id][number] in gone_ids


@pytest.mark.slow
def test_dribbled_bodies_arrive_in_small_pieces(emulator) -> None:
    """A dribbling CDN answer promises the whole file and sends it 1 KiB at a time (a client's
    read timeout never fires; only an overall deadline ends it)."""
    with emulator(seed=5, channels=1, messages=40, fault_dribble=0.5, **FAST) as emu:
        attachment = small_image_url(emu)

        async def first_reads() -> list[tuple[str | None, list[int]]]:
            async with aiohttp.ClientSession() as session:
                answers = []
                for _ in range(8):
                    async with session.get(attachment["url"]) as response:
                        reads = [len(await response.content.readany()) for _ in range(4)]
                        answers.append((response.headers.get("Content-Length"), reads))
                return answers

        answers = asyncio.run(first_reads())
        dribbled = emu.stats()["faults"]["dribble"]
    assert 0 < dribbled < len(answers)
    assert {length for length, _ in answers} == {str(attachment["size"])}
    assert sum(max(reads) <= 1024 for _, reads in answers) == dribbled
