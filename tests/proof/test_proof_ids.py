"""Ids at the boundary. Every id that comes from Discord, an export, the settings or the command line
is a decimal ASCII snowflake, 0 < id < 2**64, no later than now (plus a small clock skew). Anything
else is a recorded drop (a history page's message, left out with a warning) or one clear error (an
export, a setting, a stored cursor): never a traceback, never a cursor moved into the future that
silently stops a channel's collection. History pages get their hostile messages from a proxy in
front of the emulator that adds them to every page it passes on."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from flows_kit import emulator_config
from proof_kit import TOKEN, cli_env, run_cli
from typer.testing import CliRunner

from midshard.cleaners.explain import explain_lines
from midshard.emulator import running_emulator
from midshard.flows.cli import app
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.snowflakes import snowflake_at
from midshard.store import Store

VALID = 1240000000000000000
FUTURE = str(snowflake_at(datetime.now(UTC) + timedelta(days=1)))
BAD_IDS = {  # an id as a hostile source may write it -> what must be said about it
    "arabic_indic_digits": "١٢٤٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠",
    "superscript_digits": "¹²⁴",
    "above_2_64": str(2**64 + 5),
    "negative": "-5",
    "zero": "0",
    "leading_zero": "01240000000000000000",
    "padded": " 1240000000000000000",
    "future": FUTURE,
    "not_a_number": "abc",
}


def _message(message_id: object, **fields: object) -> dict:
    return {"id": message_id, "content": "**a fox --ar 1:1** - <@1>", "author": {"id": "1"}} | fields


HOSTILE_MESSAGES = [
    *(_message(value) for value in BAD_IDS.values()),
    _message(str(VALID), attachments=[{"id": "1.5", "url": "https://cdn.discordapp.com/x.png"}]),
    _message(str(VALID + 1), message_reference={"message_id": BAD_IDS["superscript_digits"]}),
    _message(str(VALID + 2), channel_id=BAD_IDS["above_2_64"]),
    _message(VALID + 3),  # a number, not a string
]


class Injector:
    """A reverse proxy to the emulator that appends `extra` messages to every history page."""

    def __init__(self, upstream: str, extra: list[dict]) -> None:
        self.upstream = upstream
        self.extra = extra
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
            ) as answer,
        ):
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower().startswith(("x-ratelimit", "retry"))}
            if request.method == "GET" and request.path.endswith("/messages") and answer.status == 200:
                body = json.dumps([*json.loads(body), *self.extra]).encode()
            return web.Response(
                status=answer.status, body=body, headers=kept, content_type="application/json"
            )


@contextmanager
def injecting(upstream: str, extra: list[dict]) -> Iterator[Injector]:
    """The proxy on 127.0.0.1, served from a background thread for the duration of the block."""
    injector = Injector(upstream, extra)
    app_ = web.Application()
    app_.router.add_route("*", "/{tail:.*}", injector.handle)
    runner = web.AppRunner(app_, access_log=None)
    listener = socket.create_server(("127.0.0.1", 0))
    injector.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, listener).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield injector
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.mark.slow
def test_history_pages_with_hostile_ids_lose_nothing_else(emulator_cache: Path, tmp_path: Path) -> None:
    config = emulator_config(emulator_cache, token=TOKEN, channels=1, messages=150)
    with running_emulator(config) as emulator, injecting(emulator.base_url, HOSTILE_MESSAGES) as proxy:
        root = tmp_path / "data"
        api_base = proxy.base_url + emulator.api_base.removeprefix(emulator.base_url)
        (channel,) = emulator.channel_ids
        args = ["collect", "--channel", str(channel), "--out", str(root), "--api-base", api_base]
        args += ["--set", "max_file_size=300000"]
        first = run_cli(args, cli_env(tmp_path / "p"), tmp_path / "logs" / "1")
        emulator.grow(7)
        second = run_cli(args, cli_env(tmp_path / "p"), tmp_path / "logs" / "2")
        served = {int(line["id"]) for line in emulator.truth()}

    for run in (first, second):
        assert run.returncode == 0, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
    raw = RawStore(Store(str(root)))
    stored = [int(message["id"]) for _, message in raw.iter_messages(channel)]
    assert sorted(stored) == sorted(served)  # every real message, the 7 new ones included, once
    assert raw.cursor(channel) == max(served)
    for case, value in BAD_IDS.items():  # each named in a warning of the run's summary
        shown = value if case in ("future", "above_2_64", "zero") else repr(value)[:20]
        assert f"a message was not stored: message id {shown}" in first.stdout, case
    assert f"message {VALID}: attachment id '1.5' is not a snowflake" in first.stdout
    assert f"message {VALID + 1}: message_reference message_id '¹²⁴'" in first.stdout
    assert f"message id {VALID + 3} is not a snowflake string" in first.stdout


def _export(tmp_path: Path, name: str, channel_id: object, messages: list[dict]) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"channel": {"id": channel_id}, "messages": messages}, ensure_ascii=False))
    return path


BAD_EXPORTS = {
    **{f"message_{case}": ("1", [_message(value)]) for case, value in BAD_IDS.items()},
    "channel_superscript": ("¹²", [_message(str(VALID))]),
    "channel_above_2_64": (str(2**64), [_message(str(VALID))]),
    "attachment_id": ("1", [_message(str(VALID), attachments=[{"id": "²"}])]),
    "reference_id": ("1", [_message(str(VALID), reference={"messageId": "1e9"})]),
}


@pytest.mark.parametrize("name", sorted(BAD_EXPORTS))
def test_an_export_with_a_bad_id_is_refused_naming_file_and_id(tmp_path: Path, name: str) -> None:
    channel_id, messages = BAD_EXPORTS[name]
    good = _export(tmp_path, "good", "1", [_message(str(VALID + 9))])
    bad = _export(tmp_path, name, channel_id, messages)
    root = tmp_path / "data"
    result = CliRunner().invoke(app, ["import-export", str(good), str(bad), "--out", str(root), "--raw-only"])
    assert result.exit_code == 2, result.output
    assert f"error: {bad}: not a DiscordChatExporter JSON export: " in result.output
    assert "is not a snowflake" in result.output and "Traceback" not in result.output
    assert not root.exists()  # every file is checked before anything is written


def test_explain_answers_every_other_line() -> None:
    lines = [json.dumps(message, ensure_ascii=False) for message in HOSTILE_MESSAGES]
    answers = list(explain_lines(lines, Settings()))
    assert len(answers) == len(lines)
    errors = [answer["error"] for answer in answers if "error" in answer]
    assert len(errors) == len(BAD_IDS) and all("is not a snowflake" in error for error in errors)
    answered = [answer["id"] for answer in answers if "id" in answer]
    assert answered == [str(VALID + n) for n in range(4)]  # other bad ids count as absent


@pytest.mark.parametrize(
    "args",
    [
        ["--channel", "0"],
        ["--channel", str(2**64)],
        ["--set", "channels=[-3]"],
        ["--set", f"channels=[{FUTURE}]"],
        ["--channel", "1", "--set", "bot_ids=[1, 99999999999999999999999]"],
    ],
    ids=["zero", "above_2_64", "negative", "future", "bot_id"],
)
def test_ids_in_settings_and_flags_are_checked_before_anything_runs(tmp_path: Path, args: list[str]) -> None:
    root = tmp_path / "data"
    for command in ("collect", "scrape"):
        result = CliRunner().invoke(app, [command, *args, "--out", str(root)])
        assert result.exit_code == 2, result.output
        assert "is not a snowflake" in result.output and "Traceback" not in result.output
    assert not root.exists()


@pytest.mark.slow
def test_a_cursor_in_the_future_is_an_error_not_a_silent_stop(emulator_cache: Path, tmp_path: Path) -> None:
    config = emulator_config(emulator_cache, token=TOKEN, channels=1, messages=20)
    root = tmp_path / "data"
    with running_emulator(config) as emulator:
        (channel,) = emulator.channel_ids
        (root / "state").mkdir(parents=True)
        (root / "state" / "cursors.json").write_text(json.dumps({str(channel): FUTURE}))
        args = ["collect", "--channel", str(channel), "--out", str(root), "--api-base", emulator.api_base]
        run = run_cli(args, cli_env(tmp_path / "p"), tmp_path / "logs")
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"the cursor of channel {channel} {FUTURE} is not a snowflake" in run.stderr
    assert "in the future" in run.stderr and "Traceback" not in run.stderr
