"""One writer per data root. A second writing command on a root in use stops at once with an
error naming the holder, or waits for it (`lock_wait`) without writing anything meanwhile; a holder
killed with SIGKILL leaves a lock the next run takes over; the flows take the lock themselves (a
deployment run does not go through the CLI); an fsspec root that is not a local directory is held
by a lease. The holders here are real processes: `midshard collect`, or a small process that holds
the lock until it is told to let go."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flows_kit import emulator_config, write_toml
from proof_kit import TOKEN, cli_env, files_under, run_cli
from typer.testing import CliRunner

from midshard import lock
from midshard.emulator import running_emulator
from midshard.emulator.running import Emulator
from midshard.flows.cli import app
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

HOLD = (
    "import sys\n"
    "from midshard.lock import root_lock\n"
    "with root_lock(sys.argv[1], 'holder of the proof'):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.readline()\n"
)


@contextmanager
def holding(root: str) -> Iterator[subprocess.Popen]:
    """A process that holds `root`'s lock until the block ends (or the test kills it)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        yield process
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def emulator(emulator_cache: Path) -> Iterator[Emulator]:
    config = emulator_config(emulator_cache, token=TOKEN, channels=1, messages=150)
    with running_emulator(config) as emulator:
        yield emulator


def collect_args(emulator: Emulator, root: Path, *extra: str) -> list[str]:
    """`midshard collect` of the emulator's channels; attachments above 300 kB are not fetched."""
    channels = [arg for channel_id in emulator.channel_ids for arg in ("--channel", str(channel_id))]
    args = ["collect", *channels, "--out", str(root), "--api-base", emulator.api_base]
    return [*args, "--set", "max_file_size=300000", *extra]


def _export(folder: Path) -> Path:
    """A one-message DiscordChatExporter export."""
    path = folder / "export.json"
    message = {"id": "1240000000000000000", "content": "hi", "author": {"id": "1"}, "attachments": []}
    path.write_text(json.dumps({"channel": {"id": "1"}, "messages": [message]}))
    return path


@pytest.mark.slow
def test_every_writing_command_refuses_a_root_in_use_and_names_the_holder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    RawStore(Store(str(root))).write_message_batch(1, [{"id": "1240000000000000000"}])  # rebuild's source
    config = write_toml(tmp_path / "midshard.toml", {"root": str(root), "channels": [1]})
    export = _export(tmp_path)
    commands = {
        "collect": ["collect", "--channel", "1", "--out", str(root)],
        "scrape": ["scrape", "--channel", "1", "--out", str(root)],
        "refresh": ["refresh", "--config", str(config)],
        "rebuild": ["rebuild", "--raw", str(root)],
        "import-export": ["import-export", str(export), "--out", str(root)],
        "import-export --raw-only": ["import-export", str(export), "--out", str(root), "--raw-only"],
    }
    with holding(str(root)) as holder:
        assert lock.holder(str(root)) == lock.holder(str(root))  # reading takes nothing
        named = lock.holder(str(root))
        assert named is not None and named.pid == holder.pid and named.host == socket.gethostname()
        for name, args in commands.items():
            result = CliRunner().invoke(app, args, env={"DISCORD_BOT_TOKEN": TOKEN})
            assert result.exit_code == 2, (name, result.output)
            assert f"data root {root} is in use by pid {holder.pid} on {named.host}" in result.output, name
            assert "holder of the proof" in result.output and named.since in result.output
            assert "Prefect API" not in result.output, name  # refused before Prefect starts
            assert "Traceback" not in result.output
    assert lock.holder(str(root)) is None
    assert not (root / "state" / "lock").exists()  # a holder that ends normally leaves no lock file


@pytest.mark.slow
def test_a_waiting_run_writes_nothing_until_the_holder_is_done(emulator: Emulator, tmp_path: Path) -> None:
    root, logs = tmp_path / "data", tmp_path / "logs"
    reference = tmp_path / "reference"
    assert run_cli(collect_args(emulator, reference), cli_env(tmp_path / "p"), logs / "ref").returncode == 0
    with holding(str(root)) as holder:
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "midshard.flows.cli",
                *collect_args(emulator, root, "--set", "lock_wait=300"),
            ],
            env=cli_env(tmp_path / "p"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # the first thing it says: whom it waits for
        assert f"is in use by pid {holder.pid}" in line and "waiting up to 300 s" in line, line
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == ["state", "state/lock"]
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out + err
    assert files_under(root) == files_under(reference)


@pytest.mark.slow
def test_a_sigkilled_holder_is_taken_over(emulator: Emulator, tmp_path: Path) -> None:
    root, logs = tmp_path / "data", tmp_path / "logs"
    killed = run_cli(
        collect_args(emulator, root), cli_env(tmp_path / "p"), logs / "1", kill_at="media_stored:3"
    )
    assert killed.killed
    left = json.loads((root / "state" / "lock").read_text())  # the dead run's name is still there
    assert lock.holder(str(root)) is None  # but the kernel released its lock

    resumed = run_cli(collect_args(emulator, root), cli_env(tmp_path / "p"), logs / "2")
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over from pid {left['pid']}" in resumed.stderr
    reference = tmp_path / "reference"
    assert run_cli(collect_args(emulator, reference), cli_env(tmp_path / "p"), logs / "3").returncode == 0
    assert files_under(root) == files_under(reference)


@pytest.mark.slow
def test_the_flows_take_the_lock_themselves(tmp_path: Path) -> None:
    from midshard.flows.pipeline import import_export, rebuild

    root = tmp_path / "data"
    export = _export(tmp_path)
    settings = Settings.load(root=str(root))
    with holding(str(root)) as holder:
        for call in (
            lambda: rebuild.fn(settings, str(root)),
            lambda: import_export.fn(settings, [str(export)]),
        ):
            with pytest.raises(lock.RootBusyError, match=f"in use by pid {holder.pid}"):
                call()
    assert not (root / "raw").exists()


@pytest.mark.slow
def test_an_fsspec_root_is_held_by_a_lease(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = f"dir::{tmp_path / 'remote'}"  # an fsspec file system that is not the local one
    with holding(root) as holder:
        named = lock.holder(root)
        assert named is not None and named.pid == holder.pid
        with (
            pytest.raises(lock.RootBusyError, match=f"in use by pid {holder.pid}"),
            lock.root_lock(root, "2nd"),
        ):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # A killed holder's lease outlives it until it lapses (LEASE_SECONDS) ...
        assert lock.holder(root) == named
        lease_path = next(Path(tmp_path / "remote").rglob("lock"))
        lease = json.loads(lease_path.read_text())
        lease_path.write_text(json.dumps(lease | {"expires": lease["expires"] - 2 * lock.LEASE_SECONDS}))
        # ... and is then taken over.
        with lock.root_lock(root, "third"):
            assert lock.holder(root).pid == os.getpid()
    assert f"took over from pid {holder.pid}" in caplog.text
    assert lock.holder(root) is None and not lease_path.exists()


def test_reading_who_holds_a_root_writes_nothing(tmp_path: Path) -> None:
    assert lock.holder(str(tmp_path / "fresh")) is None
    assert not (tmp_path / "fresh").exists()


def test_a_root_is_reentrant_for_its_thread_only(tmp_path: Path) -> None:
    import threading

    root = str(tmp_path / "data")
    with lock.root_lock(root, "outer"), lock.root_lock(root, "inner"):  # a flow within a flow
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                with lock.root_lock(root, "other thread"):
                    pass
            except lock.RootBusyError as error:
                errors.append(error)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and f"pid {os.getpid()}" in str(errors[0])
    assert lock.holder(root) is None
