"""The fault matrix: the emulator misbehaves the ways Discord does (429 storms with lying headers
and a low ban threshold, 5xx and broken bodies on the API, resets, truncation, slow answers and
links expiring mid-run on the CDN, vanished files), one mode at a time through the collectors and
all at once through the scrape flow, on a channel full of the emulator's broken files and hostile
file names. Every message the server can serve ends up in the raw store once, every servable file
is stored, nothing else is, the dataset is the emulator's truth, and the client is never banned.

tests/collectors/test_collect_media.py covers CDN faults with links that expired *before* the
downloads began; these modes add rate-limit pressure, API faults, timeouts and expiry *during* the
run, and the whole flow."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from flows_kit import PrefectServer, emulator_config, rejected_decisions, truth_decisions
from proof_kit import TOKEN, tar_keys
from pydantic import SecretStr

from midshard.collectors.collect import collect
from midshard.emulator import EmulatorConfig, generate_truth, running_emulator
from midshard.emulator.faults import Faults
from midshard.emulator.running import Emulator
from midshard.emulator.singles import HOSTILE_NAMES
from midshard.emulator.traffic import Traffic
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

SMALL_FILES = 300_000  # larger attachments are refused before any request: the downloads stay small
MODES: dict[str, tuple[dict, dict, tuple[str, ...]]] = {
    # emulator faults, settings, counters that must have fired
    "429_storm_lying_headers": (
        {"shared_429_rate": 0.3, "lying_headers": True, "history_limit": 1, "history_window": 1.5},
        {},
        ("rate_limited.shared", "rate_limited.user"),
    ),
    "api_5xx_resets_truncation": (
        {"fault_5xx": 0.15, "fault_reset": 0.15, "fault_truncate": 0.15, "api_body_faults": True},
        {},
        ("faults.5xx", "faults.reset", "faults.truncate"),
    ),
    "cdn_slow_resets_links_expiring": (
        {"fault_reset": 0.2, "fault_truncate": 0.2, "fault_slow": 0.15, "slow_seconds": 0.6, "link_ttl": 0.8},
        {"read_timeout": 0.3, "download_concurrency": 2},
        ("faults.reset", "faults.truncate", "faults.slow", "refreshed_urls"),
    ),
}
BAN = {"ban_threshold": 40, "ban_window": 600.0}  # Discord bans at 10 000 per 10 min: scaled down
HOSTILE_DECISIONS = {
    "download_failed:gone",
    "corrupt_image",
    "truncated_image",
    "empty_file",
    "decompression_bomb",
    "not_an_image",
}


def _channel_with_every_broken_file(config: EmulatorConfig) -> EmulatorConfig:
    """`config` with the first seed whose channel holds every kind of broken file (corrupt,
    truncated, empty, a bomb, not an image, gone) and a hostile file name, by the truth."""
    for seed in range(1, 5000):
        candidate = config.model_copy(update={"seed": seed})
        traffic = Traffic(candidate)
        channel = traffic.world.channels[0]
        kinds = [traffic.mixture.kind(channel, i) for i in range(channel.base_count)]
        if kinds.count("broken") < 5 or "hostile_name" not in kinds:  # cheap: no message built
            continue
        decisions = {c["decision"] for line in generate_truth(candidate) for c in line["candidates"]}
        names = {
            a.filename for i in range(channel.base_count) for a in traffic.message(channel, i).attachments
        }
        if decisions >= HOSTILE_DECISIONS and names & set(HOSTILE_NAMES):
            return candidate
    raise AssertionError("no seed gives a channel with every kind of broken file")


def _counter(stats: dict, name: str) -> int:
    value: object = stats
    for part in name.split("."):
        value = value[part]  # type: ignore[index]
    return int(value)  # type: ignore[arg-type]


def _assert_everything_servable_is_stored(emulator: Emulator, config: EmulatorConfig, root: Path) -> Counter:
    """Raw store = the served channels, each message once, in order; every attachment has one
    outcome: its exact bytes, or a reason that the server really gives (too large, gone)."""
    raw = RawStore(Store(str(root)))
    truth: dict[str, list[str]] = {}
    for line in emulator.truth():
        truth.setdefault(line["channel_id"], []).append(line["id"])
    results = raw.attachment_results()
    gone = Faults(config).gone
    outcomes: Counter[str] = Counter()
    for channel_id in emulator.channel_ids:
        stored = [message for _, message in raw.iter_messages(channel_id)]
        assert [m["id"] for m in stored] == truth[str(channel_id)]
        assert raw.pending_media_batches(channel_id) == []
        for message in stored:
            for attachment in message["attachments"]:
                result = results[int(attachment["id"])]
                if attachment["size"] > SMALL_FILES:
                    assert result.error == "too_large"
                elif gone(int(attachment["id"])):
                    assert result.error == "gone"
                else:
                    data = raw.read_media(result.sha256)
                    assert len(data) == attachment["size"]
                    assert hashlib.sha256(data).hexdigest() == result.sha256
                outcomes[result.error or "stored"] += 1
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_collectors_under_faults(mode: str, emulator_cache: Path, tmp_path: Path) -> None:
    faults, options, fired = MODES[mode]
    config = emulator_config(emulator_cache, token=TOKEN, messages=150, signing_epoch=None, gone_rate=0.1)
    config = config.model_copy(update=faults | BAN)
    with running_emulator(config) as emulator:
        settings = Settings.load(
            root=str(tmp_path / "data"),
            api_base=emulator.api_base,
            channels=emulator.channel_ids,
            download="all",
            max_file_size=SMALL_FILES,
            download_backoff=0.01,
            download_retries=12,
            **options,
        )
        stats = collect(settings.model_copy(update={"token": SecretStr(TOKEN)}))
        served = emulator.stats()
    assert not stats.channel_errors and stats.messages == 300
    outcomes = _assert_everything_servable_is_stored(emulator, config, tmp_path / "data")
    assert outcomes["stored"] > 0 and outcomes["gone"] > 0, outcomes
    assert served["bans"] == 0 and served["banned_responses"] == 0
    assert {name: _counter(served, name) for name in fired} == {
        name: _counter(served, name) for name in fired if _counter(served, name) > 0
    }, f"{mode}: some faults never fired: {served}"


@pytest.mark.prefect
def test_scrape_flow_under_every_fault(
    prefect_server: PrefectServer, emulator_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from midshard.flows.pipeline import scrape

    faults = {
        "shared_429_rate": 0.1,
        "lying_headers": True,
        "fault_5xx": 0.05,
        "fault_reset": 0.1,
        "fault_truncate": 0.1,
        "gone_rate": 0.1,
        "link_ttl": 1.0,
        "signing_epoch": None,
    }
    config = _channel_with_every_broken_file(
        emulator_config(emulator_cache, token=TOKEN, channels=1, messages=120, **faults, **BAN)
    )
    monkeypatch.setenv("DISCORD_BOT_TOKEN", TOKEN)
    with running_emulator(config) as emulator:
        root = tmp_path / "data"
        settings = Settings.load(
            root=str(root),
            api_base=emulator.api_base,
            channels=emulator.channel_ids,
            download_backoff=0.01,
            download_retries=12,
            clean_workers=1,
        )
        result = scrape(settings)
        served, truth = emulator.stats(), truth_decisions(emulator.truth())
    assert result.collect_errors == {}
    keys = tar_keys(root)
    assert len(keys) == len(set(keys))  # no sample twice
    assert set(keys) == {key for key, decision in truth.items() if decision == "keep"}
    assert rejected_decisions(root) == {key: d for key, d in truth.items() if d != "keep"}
    assert set(truth.values()) >= HOSTILE_DECISIONS
    names = {a["filename"] for _, m in RawStore(Store(str(root))).iter_messages() for a in m["attachments"]}
    assert names & set(HOSTILE_NAMES)
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in root.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert served["bans"] == 0 and served["banned_responses"] == 0
    assert served["refreshed_urls"] > 0 and all(served["faults"][k] > 0 for k in ("5xx", "reset", "truncate"))
