"""Helpers of the flow tests: a real Prefect server process, emulator configurations, and readers of
what a flow wrote (read back from the files themselves, not from midshard's own state)."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import fsspec
import pyarrow.parquet as pq

from midshard.emulator import EmulatorConfig
from midshard.emulator.running import Emulator
from midshard.flows.pipeline import RunResult
from midshard.flows.prefect_env import DEFAULTS
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

TOKEN = "flows-emu-T0ken.never_printed_4b1d"
# Links signed as issued at session start: two crawls of the same channels store the same JSON.
SIGNING_EPOCH = float(int(time.time()))
PREFECT = [sys.executable, "-m", "prefect"]


# -- processes -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def closed_port_url() -> str:
    """A Discord base URL nobody listens on: any request to it fails at once."""
    return f"http://127.0.0.1:{free_port()}/api/v10"


def stop(process: subprocess.Popen) -> None:
    """Stop a process started with `start_new_session=True`, and its children, by its group id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # Prefect's CLI shuts down cleanly on SIGINT
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def prefect_env(api_url: str, home: Path) -> dict[str, str]:
    """The environment of a Prefect CLI process of the tests: offline, its own PREFECT_HOME."""
    env = {**os.environ, **DEFAULTS, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url}
    return env


def drain_prefect_workers() -> None:
    """Send this process's queued Prefect logs and events now (as prefect_test_harness does)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # the log worker never started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


@dataclass(frozen=True)
class PrefectServer:
    process: subprocess.Popen
    api_url: str
    home: Path
    log: Path

    def cli(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        """Run `prefect <args>` against this server; its output (fails the test on an error)."""
        done = subprocess.run(
            [*PREFECT, "--no-prompt", *args],
            cwd=cwd,
            env=env or prefect_env(self.api_url, self.home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout


def start_prefect_server(home: Path) -> PrefectServer:
    """`prefect server start` on a free port of 127.0.0.1, SQLite under `home`; returns when healthy."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=prefect_env("", home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = PrefectServer(process, api_url, home, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"prefect server not healthy in time:\n{log.read_text()[-3000:]}")


# -- the emulator and settings ---------------------------------------------------------------------
def emulator_config(cache: Path, **overrides: object) -> EmulatorConfig:
    """Two channels of 60 messages, short rate-limit windows, frozen link signing."""
    values: dict = {
        "seed": 3,
        "channels": 2,
        "messages": 60,
        "token": TOKEN,
        "history_window": 0.5,
        "cache_dir": cache,
        "signing_epoch": SIGNING_EPOCH,
    }
    return EmulatorConfig(**(values | overrides))


def flow_settings(emulator: Emulator, root: Path | str, **overrides: object) -> Settings:
    """Settings of a flow run against the emulator (the token stays in the environment)."""
    values: dict = {"root": str(root), "api_base": emulator.api_base, "channels": emulator.channel_ids}
    return Settings.load(**(values | overrides))


# -- reading what a flow wrote ---------------------------------------------------------------------
def dataset_files(root: Path) -> dict[str, bytes]:
    """Every file under `root/dataset`, by path relative to it."""
    base = root / "dataset"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def kept_keys(root: Path) -> set[str]:
    """Keys of the samples in the dataset's tar shards."""
    keys: set[str] = set()
    for shard in sorted((root / "dataset").glob("*.tar")):
        with tarfile.open(shard) as tar:
            keys.update(member.name.split(".", 1)[0] for member in tar.getmembers())
    return keys


def rejected_decisions(root: Path) -> dict[str, str]:
    """Key -> decision of every rejected candidate recorded in the dataset."""
    out: dict[str, str] = {}
    for part in sorted((root / "dataset" / "rejected").glob("*.parquet")):
        table = pq.read_table(part, columns=["key", "decision"]).to_pydict()
        out.update(zip(table["key"], table["decision"], strict=True))
    return out


def truth_decisions(truth: list[dict]) -> dict[str, str]:
    """Candidate key -> the decision the emulator says midshard must reach."""
    return {c["key"]: c["decision"] for line in truth for c in line["candidates"]}


def shards(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name.endswith(".tar")}


@dataclass(frozen=True)
class Scraped:
    """One scrape of the session emulator, as it was right after the flow returned."""

    emulator: Emulator
    settings: Settings
    root: Path
    truth: list[dict]
    dataset: dict[str, bytes]
    result: RunResult
    flow_run_id: UUID


# -- inputs the tests write ------------------------------------------------------------------------
def write_toml(path: Path, values: dict[str, object]) -> Path:
    """A settings file (JSON scalars and lists are valid TOML values)."""
    path.write_text("".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items()))
    return path


def write_dce_export(raw_root: Path, channel_id: int, folder: Path) -> Path:
    """A DiscordChatExporter `--media` export of a channel of a raw store: the messages in DCE's
    JSON shape, the stored attachment files in the `<export>.json_Files` folder beside it."""
    raw = RawStore(Store(str(raw_root)))
    stored = raw.attachment_results(channel_id)
    name = f"Midjourney - generations [{channel_id}].json"
    media = folder / f"{name}_Files"
    media.mkdir(parents=True)
    messages = []
    for _, message in raw.iter_messages(channel_id):
        attachments = []
        for a in message["attachments"]:
            result = stored.get(int(a["id"]))
            # DCE names media files after the attachment, with path separators made safe
            file_name = f"{a['id']}-" + re.sub(r'[\\/:*?"<>|]', "_", a["filename"])
            if result is not None and result.sha256:
                (media / file_name).write_bytes(raw.read_media(result.sha256))
            attachments.append(
                {
                    "id": a["id"],
                    "url": f"{name}_Files\\{file_name}",
                    "fileName": a["filename"],
                    "fileSizeBytes": a["size"],
                }
            )
        messages.append(_dce_message(message, attachments))
    document = {
        "guild": {"id": "948369043046264832", "name": "Emulated guild", "iconUrl": ""},
        "channel": {"id": str(channel_id), "type": "GuildTextChat", "name": "generations"},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2025-10-01T00:00:00.000+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }
    path = folder / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def _dce_message(message: dict, attachments: list[dict]) -> dict:
    author = message["author"]
    out = {
        "id": message["id"],
        "type": {0: "Default", 19: "Reply", 20: "ChatInputCommand"}.get(message["type"], "Default"),
        "timestamp": message["timestamp"],
        "timestampEdited": message.get("edited_timestamp"),
        "isPinned": False,
        "content": message["content"],
        "author": {"id": author["id"], "name": author["username"], "isBot": author.get("bot", False)},
        "attachments": attachments,
        "embeds": [],
    }
    if message.get("message_reference"):
        reference = message["message_reference"]
        out["reference"] = {
            "messageId": reference.get("message_id"),
            "channelId": reference.get("channel_id"),
        }
    if message.get("interaction"):
        interaction = message["interaction"]
        out["interaction"] = {"id": interaction.get("id"), "name": interaction.get("name")}
    return out


def memory_files(url: str) -> dict[str, bytes]:
    """Every file under an fsspec URL, by path relative to it."""
    fs, base = fsspec.core.url_to_fs(url)
    return {path.removeprefix(base.rstrip("/") + "/"): fs.cat_file(path) for path in sorted(fs.find(base))}
