"""Hostile media links: where media may come from, and how long a download may take.

A message or an export names the URL an attachment is fetched from. Links to other schemes, other
hosts, loopback/private/link-local addresses, and redirects that lead there are refused with a
reason code before any request reaches them; a server that dribbles a body byte by byte is cut off
by the overall deadline. Each case runs against real servers on 127.0.0.1: a "CDN" that is the
configured API base, and an "intranet" service that must never be reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from flows_kit import TOKEN, emulator_config
from pydantic import SecretStr
from typer.testing import CliRunner

from midshard.collectors.collect import collect_history, collect_media
from midshard.collectors.media import AttachmentRef, MediaDownloader
from midshard.emulator import running_emulator
from midshard.flows.cli import app
from midshard.raw_store import ERRORS, RawStore
from midshard.settings import Settings
from midshard.store import Store

Answer = Callable[[], web.StreamResponse]  # a fresh response per request
BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
CHANNEL = 1200000000000000099


@asynccontextmanager
async def serving(routes: dict[str, Answer], hits: Counter[str]) -> AsyncIterator[int]:
    """An HTTP server on 127.0.0.1 answering `routes` (path -> response), counting every request."""

    async def handle(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        return routes.get(request.path, lambda: web.Response(status=404))()

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def redirect(location: str) -> Answer:
    return lambda: web.Response(status=302, headers={"Location": location})


def png() -> web.Response:
    return web.Response(body=BODY, content_type="image/png")


async def fetch_all(settings: Settings, root: Path, urls: dict[str, str]) -> dict[str, str]:
    """Each URL's outcome through the downloader: the stored bytes' sha256, or the reason code."""
    raw = RawStore(Store(str(root)))
    outcomes = {}
    async with MediaDownloader(settings, raw) as downloader:
        for index, (name, url) in enumerate(urls.items()):
            ref = AttachmentRef(1000 + index, 2000 + index, CHANNEL, url, None)
            result, _ = await downloader.fetch(ref)
            outcomes[name] = result.sha256 or result.error
    return outcomes


def test_media_comes_only_from_allowed_hosts_and_redirects_stay_there(tmp_path: Path) -> None:
    stored = hashlib.sha256(BODY).hexdigest()

    async def scenario() -> tuple[dict[str, str], dict[str, str], Counter[str], Counter[str]]:
        cdn_hits: Counter[str] = Counter()
        intranet_hits: Counter[str] = Counter()
        async with serving({"/secret": png}, intranet_hits) as intranet:
            inside = f"http://127.0.0.1:{intranet}/secret"
            routes = {
                "/attachments/1/2/a.png": png,
                "/hop": redirect("/attachments/1/2/a.png"),  # relative, same origin: followed
                "/to-intranet": redirect(inside),
                "/to-file": redirect("file:///etc/passwd"),
                "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
                "/to-localhost": redirect(f"http://localhost:{intranet}/secret"),
                "/loop": redirect("/loop"),
            }
            async with serving(routes, cdn_hits) as port:
                cdn = f"http://127.0.0.1:{port}"
                base = f"{cdn}/api/v10"
                settings = Settings(root=str(tmp_path), api_base=base, download="all", download_backoff=0.01)
                links = {
                    "api_base_host": f"{cdn}/attachments/1/2/a.png",
                    "redirect_within": f"{cdn}/hop",
                    "file": "file:///etc/passwd",
                    "ftp": "ftp://cdn.discordapp.com/attachments/1/2/a.png",
                    "data": "data:image/png;base64,iVBORw0KGgo=",
                    "other_port": inside,
                    "metadata": "http://169.254.169.254/latest/meta-data/iam",
                    "credentials_trick": f"https://cdn.discordapp.com@127.0.0.1:{intranet}/secret",
                    "ipv6_loopback": f"http://[::1]:{intranet}/secret",
                    "decimal_ip": f"http://2130706433:{intranet}/secret",
                    "lookalike": f"https://cdn.discordapp.com.127.0.0.1.nip.io:{intranet}/secret",
                    "redirect_to_intranet": f"{cdn}/to-intranet",
                    "redirect_to_file": f"{cdn}/to-file",
                    "redirect_to_metadata": f"{cdn}/to-metadata",
                    "redirect_to_name": f"{cdn}/to-localhost",
                    "redirect_loop": f"{cdn}/loop",
                }
                refused = await fetch_all(settings, tmp_path, links)
                # the user names extra hosts: an address is trusted, a name must resolve publicly
                names = [f"127.0.0.1:{intranet}", f"localhost:{intranet}"]
                named = settings.model_copy(update={"media_hosts": names})
                opted_in = await fetch_all(
                    named,
                    tmp_path,
                    {"named_address": inside, "named_loopback_name": f"http://localhost:{intranet}/secret"},
                )
        return refused, opted_in, cdn_hits, intranet_hits

    refused, opted_in, cdn_hits, intranet_hits = asyncio.run(scenario())
    assert refused == {
        "api_base_host": stored,
        "redirect_within": stored,
        "file": "scheme_not_allowed",
        "ftp": "scheme_not_allowed",
        "data": "scheme_not_allowed",
        "other_port": "host_not_allowed",
        "metadata": "host_not_allowed",
        "credentials_trick": "host_not_allowed",
        "ipv6_loopback": "host_not_allowed",
        "decimal_ip": "host_not_allowed",
        "lookalike": "host_not_allowed",
        "redirect_to_intranet": "redirect_not_allowed",
        "redirect_to_file": "redirect_not_allowed",
        "redirect_to_metadata": "redirect_not_allowed",
        "redirect_to_name": "redirect_not_allowed",
        "redirect_loop": "too_many_redirects",
    }
    assert cdn_hits["/loop"] == 6  # the first request and five redirects, then it gives up
    assert opted_in == {"named_address": stored, "named_loopback_name": "private_address"}
    assert intranet_hits == Counter({"/secret": 1})  # only when the user named its address
    assert all(reason in ERRORS for reason in {*refused.values(), *opted_in.values()} - {stored})


@pytest.mark.slow
def test_a_dribbling_server_is_cut_off_by_the_deadline(tmp_path: Path, emulator_cache: Path) -> None:
    """Every read arrives well within the read timeout, so only the overall deadline can end it."""
    config = emulator_config(emulator_cache, channels=1, messages=40, fault_dribble=0.5, small_files=True)
    with running_emulator(config) as emulator:
        settings = Settings(
            root=str(tmp_path / "data"),
            api_base=emulator.api_base,
            token=SecretStr(TOKEN),
            download="all",
            max_file_size=300_000,  # small files, dribbled at 10 kB/s: any of them outlasts the deadline
            read_timeout=5.0,  # far above the 0.1 s between two pieces of a dribbled body
            download_deadline=1.5,
            download_retries=1,
        )
        channel_id = emulator.channel_ids[0]
        collect_history(settings, channel_id)
        results = collect_media(settings, channel_id)
        served = emulator.stats()
    outcomes = Counter("stored" if r.sha256 else r.error for r in results)
    assert served["faults"]["dribble"] > 0
    assert outcomes["deadline"] > 0 and outcomes["stored"] > 0, outcomes
    assert set(outcomes) <= {"stored", "deadline", "too_large"}
    raw = RawStore(Store(str(tmp_path / "data")))
    assert raw.pending_media_batches(channel_id) == []
    assert not list((tmp_path / "data" / "raw" / "media").glob("*.tmp"))  # cut-off bodies left nothing


def test_an_export_downloads_from_other_hosts_only_when_the_user_names_them(tmp_path: Path) -> None:
    """DiscordChatExporter exports with URL attachments follow the same rule; `--media-host` opts in."""

    async def scenario() -> tuple[list[str], list[str]]:
        hits: Counter[str] = Counter()
        async with serving({"/files/a.png": png}, hits) as port:
            url = f"http://127.0.0.1:{port}/files/a.png"
            attachment = {"id": "1300000000000000001", "url": url, "fileName": "a.png"}
            message = {"id": "1300000000000000002", "type": "Default", "attachments": [attachment]}
            document = {"channel": {"id": str(CHANNEL)}, "messages": [message], "messageCount": 1}
            export = tmp_path / "export.json"
            export.write_text(json.dumps(document))
            outputs = []
            for extra in ([], ["--media-host", f"127.0.0.1:{port}"]):
                root = tmp_path / f"data{len(extra)}"
                args = ["import-export", str(export), "--out", str(root), "--raw-only", "--media"]
                result = await asyncio.to_thread(
                    CliRunner().invoke, app, [*args, "--download", "all", *extra]
                )
                assert result.exit_code == 0, result.output
                outputs.append(result.output)
        results = [RawStore(Store(str(tmp_path / f"data{n}"))).attachment_results() for n in (0, 2)]
        assert hits == Counter({"/files/a.png": 1})
        return [r.sha256 or r.error for r in results[0].values()], [
            r.sha256 or r.error for r in results[1].values()
        ]

    without, named = asyncio.run(scenario())
    assert without == ["host_not_allowed"]
    assert named == [hashlib.sha256(BODY).hexdigest()]


@pytest.mark.parametrize(
    "entry", ["https://cdn.example.org", "cdn.example.org/path", "user@host", "host:port"]
)
def test_media_hosts_are_host_or_host_port(entry: str) -> None:
    with pytest.raises(ValueError, match="media_hosts"):
        Settings(media_hosts=[entry])
