"""`rebuild` never destroys what it cannot replace: a `--raw` that holds no raw store is an error
before anything is touched; an in-place rebuild killed before it completes leaves the previous
dataset and decisions byte for byte, one killed while swapping its result in is finished by the
next run; a read-only raw store (a real read-only mount) is rebuilt from without being written to.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows_kit import PrefectServer, emulator_config
from proof_kit import CAN_MOUNT, TOKEN, Run, cli_env, files_under, midshard, run_cli, scrape_args

from midshard.emulator import running_emulator

pytestmark = pytest.mark.prefect


def _run(args: list[str], server: PrefectServer, logs: Path, kill_at: str | None = None) -> Run:
    env = cli_env(logs.parent / "prefect-home", api_url=server.api_url)
    return run_cli(args, env, logs, kill_at=kill_at)


@pytest.fixture(scope="module")
def scraped(
    prefect_server: PrefectServer, emulator_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A data root filled by `midshard scrape` (raw store, features, decisions, dataset)."""
    root = tmp_path_factory.mktemp("source") / "data"
    with running_emulator(emulator_config(emulator_cache, token=TOKEN)) as emulator:
        done = _run(scrape_args(emulator, root), prefect_server, root.parent / "scrape")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def reference(scraped: Path, prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The dataset an uninterrupted rebuild of the scraped raw store writes elsewhere."""
    out = tmp_path_factory.mktemp("reference") / "data"
    done = _run(["rebuild", "--raw", str(scraped), "--out", str(out)], prefect_server, out.parent / "log")
    assert done.returncode == 0, done.stderr[-3000:]
    return files_under(out / "dataset")


@pytest.fixture
def root(scraped: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "data"
    shutil.copytree(scraped, copy)
    yield copy


@pytest.mark.parametrize("raw", ["missing", "empty", "file"])
def test_a_raw_root_without_a_raw_store_is_refused_before_anything(tmp_path: Path, raw: str) -> None:
    source = tmp_path / "raw"
    if raw == "empty":
        source.mkdir()
    elif raw == "file":
        source.write_text("not a data root")
    out = tmp_path / "out"
    done = midshard(["rebuild", "--raw", str(source), "--out", str(out)], cli_env(tmp_path / "p"))
    assert done.returncode == 2, done.stderr
    assert "no raw store" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("kill", ["decisions_written:1", "shard_written:1", "manifest_written:1"])
def test_a_killed_in_place_rebuild_leaves_the_previous_dataset(
    root: Path, prefect_server: PrefectServer, reference: dict, kill: str
) -> None:
    before = {name: files_under(root / name) for name in ("dataset", "derived/decisions")}
    killed = _run(["rebuild", "--raw", str(root)], prefect_server, root.parent / "killed", kill)
    assert killed.killed, killed.stderr[-3000:]
    assert {name: files_under(root / name) for name in before} == before  # untouched
    assert (root / ".rebuild").is_dir()  # the unfinished rebuild, discarded by the next run

    done = _run(["rebuild", "--raw", str(root)], prefect_server, root.parent / "again")
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_under(root / "dataset") == reference
    assert not (root / ".rebuild").exists() and not (root / ".rebuild-previous").exists()


def test_a_rebuild_killed_while_swapping_in_is_finished_by_the_next_run(
    root: Path, prefect_server: PrefectServer, reference: dict
) -> None:
    killed = _run(
        ["rebuild", "--raw", str(root)], prefect_server, root.parent / "killed", "rebuild_swapped:1"
    )
    assert killed.killed, killed.stderr[-3000:]
    assert (root / ".rebuild" / "_COMPLETE").is_file()
    assert files_under(root / "dataset") == reference  # the first folder is in; decisions are not yet

    done = _run(["rebuild", "--raw", str(root)], prefect_server, root.parent / "again")
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_under(root / "dataset") == reference
    assert not (root / ".rebuild").exists() and not (root / ".rebuild-previous").exists()


@pytest.mark.skipif(not CAN_MOUNT, reason="a read-only file system needs a bind mount in a private namespace")
def test_a_read_only_raw_store_is_rebuilt_from(
    scraped: Path, prefect_server: PrefectServer, reference: dict, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(scraped / "raw", raw / "raw")  # a raw store alone: no features, no decisions
    before = files_under(raw)
    out = tmp_path / "out"
    env = cli_env(tmp_path / "prefect-home", api_url=prefect_server.api_url)
    mount = f"mount --bind {raw} {raw} && mount -o remount,bind,ro {raw}"
    done = midshard(["rebuild", "--raw", str(raw), "--out", str(out)], env, mount)
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_under(out / "dataset") == reference
    assert (out / "derived" / "features").is_dir()  # the cache went to the output root
    assert files_under(raw) == before
