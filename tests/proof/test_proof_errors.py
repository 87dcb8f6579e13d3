"""No command prints a Python traceback for a mistake a user can fix: an output path that is a
file, a read-only or full disk, `--config` naming a directory, a missing token (found before Prefect
starts), ids with non-ASCII digits in an export. Each is one `error:` line and exit code 2, from a
real `midshard` process. Such errors are not retried by the flows either.

A read-only and a full file system are real ones: the command runs in a private mount namespace
(`unshare --mount`) holding a read-only bind mount of the data root, or a 256 KiB tmpfs as the
data root. That needs the privilege to mount (root in a container that allows it); without it a
read-only directory is a mode-0555 directory for a user who is not root, and the full-disk test
is skipped, saying why.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows_kit import emulator_config
from proof_kit import CAN_MOUNT, TOKEN, cli_env, midshard

from midshard.emulator import running_emulator
from midshard.emulator.running import Emulator
from midshard.errors import MidshardError


def assert_one_clear_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


@pytest.fixture(scope="module")
def emulator(emulator_cache: Path) -> Iterator[Emulator]:
    config = emulator_config(emulator_cache, token=TOKEN, channels=1, messages=60)
    with running_emulator(config) as emulator:
        yield emulator


def collect_args(emulator: Emulator, root: Path) -> list[str]:
    (channel,) = emulator.channel_ids
    return ["collect", "--channel", str(channel), "--out", str(root), "--api-base", emulator.api_base]


@pytest.mark.slow
def test_an_output_path_that_is_a_file(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.write_text("not a directory")
    done = midshard(collect_args(emulator, root), cli_env(tmp_path / "p"))
    assert_one_clear_error(done, f"error: data root {root} is a file, not a directory")
    nested = root / "data"
    done = midshard(collect_args(emulator, nested), cli_env(tmp_path / "p"))
    assert_one_clear_error(done, f"error: cannot write to data root {nested}: Not a directory")


@pytest.mark.slow
def test_a_read_only_data_root(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    if CAN_MOUNT:
        mount = f"mount --bind {root} {root} && mount -o remount,bind,ro {root}"
        done = midshard(collect_args(emulator, root), cli_env(tmp_path / "p"), mount)
        assert_one_clear_error(done, f"error: cannot write to data root {root}: Read-only file system")
    elif os.geteuid() != 0:
        root.chmod(0o555)
        done = midshard(collect_args(emulator, root), cli_env(tmp_path / "p"))
        assert_one_clear_error(done, f"error: cannot write to data root {root}: Permission denied")
    else:
        pytest.skip("root without the privilege to mount: no directory is read-only for this user")
    assert list(root.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not CAN_MOUNT, reason="a full file system needs a tmpfs in a private mount namespace")
def test_a_full_disk(emulator: Emulator, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    mount = f"mount -t tmpfs -o size=256k tmpfs {root}"
    done = midshard([*collect_args(emulator, root), "--download", "all"], cli_env(tmp_path / "p"), mount)
    assert_one_clear_error(done, "No space left on device")


@pytest.mark.slow
def test_config_naming_a_directory(tmp_path: Path) -> None:
    for command in (["collect", "--channel", "1"], ["scrape", "--channel", "1"], ["refresh"]):
        wide = {**cli_env(tmp_path / "p"), "COLUMNS": "1000"}  # typer's usage error, on one line
        done = midshard([*command, "--config", str(tmp_path)], wide)
        assert_one_clear_error(done, "is a directory")
    env = {**cli_env(tmp_path / "p"), "MIDSHARD_CONFIG": str(tmp_path)}
    assert_one_clear_error(midshard(["settings"], env), f"settings file {tmp_path} is a directory")


@pytest.mark.slow
def test_a_missing_token_is_found_before_prefect_starts(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    config = tmp_path / "midshard.toml"
    config.write_text(f'channels = [1]\nroot = "{tmp_path / "data"}"\n')
    env = cli_env(home, token=None)
    scrape = ["scrape", "--channel", "1", "--out", str(tmp_path / "data")]
    for args in (scrape, ["refresh", "--config", str(config)]):
        done = midshard(args, env)
        assert_one_clear_error(done, "error: no bot token: set DISCORD_BOT_TOKEN")
        assert "Prefect API" not in done.stdout  # nothing of Prefect started
    assert not home.exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_ids_with_non_ascii_digits_in_an_export(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    message = {"id": "1240000000000000000", "attachments": [{"id": "¹²³"}]}
    export.write_text(json.dumps({"channel": {"id": "١٢٣"}, "messages": [message]}, ensure_ascii=False))
    args = ["import-export", str(export), "--raw-only", "--out", str(tmp_path / "d")]
    done = midshard(args, cli_env(tmp_path))
    assert_one_clear_error(done, f"error: {export}: ", "channel.id '١٢٣' is not a snowflake")
    export.write_text(json.dumps({"channel": {"id": "123"}, "messages": [message]}, ensure_ascii=False))
    done = midshard(args, cli_env(tmp_path))
    assert_one_clear_error(done, "attachment id '¹²³' is not a snowflake")


def test_the_flows_do_not_retry_what_a_retry_cannot_fix() -> None:
    from prefect.states import Failed

    from midshard.flows.pipeline import _transient

    permanent = [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
        MidshardError("no bot token"),
    ]
    passing = [ConnectionResetError(errno.ECONNRESET, "reset"), TimeoutError(), RuntimeError("a bug?")]
    assert [_transient(None, None, Failed(data=error)) for error in permanent] == [False] * len(permanent)
    assert [_transient(None, None, Failed(data=error)) for error in passing] == [True] * len(passing)
