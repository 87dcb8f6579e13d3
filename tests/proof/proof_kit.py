"""Helpers of the proof tests: `midshard scrape` as a child process that can be killed (its whole
process group is reaped afterwards), the emulator configuration, and readers of what a run left."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from midshard.emulator.running import Emulator
from midshard.flows.prefect_env import DEFAULTS

# Distinctive, and changed by URL and base64 encoding, so every form of it can be searched for.
TOKEN = "MTA5OTk.proof-T0ken+zq9/Xv=never_printed_77c3"
FLOW_STARTED = "Beginning flow run"


@dataclass(frozen=True)
class Run:
    """One finished `midshard` child process."""

    returncode: int
    stdout: str
    stderr: str
    survivors: bool  # processes of its group were still alive after it ended (and were killed)

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def cli_env(
    prefect_home: Path, api_url: str = "", token: str | None = TOKEN, **midshard: str
) -> dict[str, str]:
    """The environment of a `midshard` child: Prefect offline with its own home, the token (or
    none), `MIDSHARD_<NAME>` settings, nothing of the caller's MIDSHARD_* or token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDSHARD_") and k != "DISCORD_BOT_TOKEN"}
    env |= {**DEFAULTS, "PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": api_url}
    env |= {"MIDSHARD_CLEAN_WORKERS": "1", "MIDSHARD_DOWNLOAD_BACKOFF": "0.01"}
    env |= {f"MIDSHARD_{name.upper()}": value for name, value in midshard.items()}
    if token is not None:
        env["DISCORD_BOT_TOKEN"] = token
    return env


def scrape_args(emulator: Emulator, root: Path, *extra: str) -> list[str]:
    channels = [arg for channel_id in emulator.channel_ids for arg in ("--channel", str(channel_id))]
    return ["scrape", *channels, "--out", str(root), "--api-base", emulator.api_base, *extra]


def run_cli(
    args: list[str],
    env: dict[str, str],
    logs: Path,
    *,
    kill_at: str | None = None,
    kill_after_start: float | None = None,
    timeout: float = 300,
) -> Run:
    """`midshard <args>` in its own session; output goes to files (a process it leaves behind may
    hold pipes open). `kill_at` is a kill point; `kill_after_start` SIGKILLs the process that many
    seconds after its flow run began. Whatever of its process group survives it is killed."""
    logs.mkdir(parents=True, exist_ok=True)
    if kill_at:
        env = {**env, "MIDSHARD_TEST_KILL_AT": kill_at}
    out, err = logs / "stdout", logs / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "midshard.flows.cli", *args],
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            if kill_after_start is not None:
                _kill_after_start(process, err, kill_after_start, timeout)
            process.wait(timeout=timeout)
        finally:
            survivors = _reap_group(process)
    return Run(
        process.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"), survivors
    )


def _kill_after_start(process: subprocess.Popen, stderr: Path, delay: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and FLOW_STARTED not in stderr.read_text(errors="replace"):
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)


def _reap_group(process: subprocess.Popen) -> bool:
    """Kill the process (if still running) and, after a grace period for its children to notice,
    every process left in its group; True if any was left."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for _ in range(100):
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


MIDSHARD = [sys.executable, "-m", "midshard.flows.cli"]


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


CAN_MOUNT = _can_mount()


def midshard(args: list[str], env: dict[str, str], mount: str = "") -> subprocess.CompletedProcess:
    """`midshard <args>`, inside a private mount namespace after the `mount` shell command if given."""
    command = [*MIDSHARD, *args]
    if mount:
        command = ["unshare", "--mount", "sh", "-c", f"{mount} && exec {shlex.join(command)}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def files_under(root: Path, *, skip_suffix: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `root`, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(skip_suffix)
    }


def token_forms(token: str) -> list[bytes]:
    """The token as bytes in every encoding it could leak in: plain, URL-encoded, and base64 /
    URL-safe base64 at each of the three byte alignments (the stable middle of the encoding)."""
    raw = token.encode()
    forms = {raw, *(quote(token).encode() for quote in (urllib.parse.quote, urllib.parse.quote_plus))}
    forms.add(urllib.parse.quote(token, safe="").encode())
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw)
            forms.add(encoded[4:-4])  # drop the characters that depend on the neighbours
    return sorted(forms)


def leaks(blob: bytes, token: str) -> list[bytes]:
    """The forms of `token` found in `blob`."""
    return [form for form in token_forms(token) if form in blob]


def tar_keys(root: Path) -> list[str]:
    """Sample keys of every shard under `root/dataset`, one per sample, duplicates kept."""
    keys: list[str] = []
    for shard in sorted((root / "dataset").glob("*.tar")):
        with tarfile.open(shard) as tar:
            keys += [m.name.split(".", 1)[0] for m in tar.getmembers() if m.name.endswith(".json")]
    return keys
