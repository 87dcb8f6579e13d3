"""An interrupted write leaves no visible partial shard, and the rerun gives the bytes an
uninterrupted write gives: interrupted by an exception, by SIGKILL, and between tar and marker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from writers_fixtures import Synthetic, snapshot, write

from midshard.records import Sample
from midshard.settings import Settings


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, data: Synthetic, settings: Settings
) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("reference")
    write(root, data, settings)
    return snapshot(root)


def assert_no_visible_partial_shard(root: Path) -> None:
    base = root / "dataset"
    for tar in base.glob("*.tar"):
        assert (base / tar.name.replace(".tar", "_stats.json")).exists(), f"{tar.name} has no marker"
    for parquet in base.glob("*-*.parquet"):
        assert (base / parquet.name.replace(".parquet", "_stats.json")).exists()
    assert not (base / "manifest.json").exists()  # dataset-level files come after all shards


class MediaError(RuntimeError):
    pass


def test_exception_mid_shard_then_rerun(
    tmp_path: Path, data: Synthetic, settings: Settings, reference
) -> None:
    calls = 0

    def failing_read(sample: Sample) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 10:  # a few shards in (at most 4 samples per shard)
            raise MediaError("media store unavailable")
        return data.read_image(sample)

    broken = Synthetic(data.samples, data.rejections, data.images)
    broken.read_image = failing_read  # type: ignore[method-assign]
    with pytest.raises(MediaError):
        write(tmp_path, broken, settings)
    assert_no_visible_partial_shard(tmp_path)
    assert not list((tmp_path / "dataset").glob("*.tmp"))
    complete = len(list((tmp_path / "dataset").glob("train-*.tar")))
    assert complete >= 2

    summary = write(tmp_path, data, settings)
    assert summary.shards_written[0] == f"train-{complete:06d}.tar"
    assert snapshot(tmp_path) == reference


@pytest.mark.slow
def test_sigkill_mid_shard_then_rerun(tmp_path: Path, data: Synthetic, settings: Settings, reference) -> None:
    script = textwrap.dedent(
        f"""
        import json, os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from writers_fixtures import make_dataset, write
        from midshard.settings import Settings

        settings = Settings(**json.loads(sys.argv[2]))
        data = make_dataset(settings.split_salt)
        calls = 0

        def read_then_die(sample):
            global calls
            calls += 1
            if calls == 14:  # mid-shard: earlier samples of this shard are in its temp file
                os.kill(os.getpid(), signal.SIGKILL)
            return data.images[sample.sha256]

        data.read_image = read_then_die
        write(sys.argv[1], data, settings)
        """
    )
    settings_json = json.dumps(settings.model_dump(mode="json"))
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), settings_json], capture_output=True, timeout=120
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    base = tmp_path / "dataset"
    assert list(base.glob("train-*.tar.*.tmp")), "the killed shard should be in a temp file"
    assert_no_visible_partial_shard(tmp_path)

    write(tmp_path, data, settings)
    assert not list(base.glob("*.tmp"))
    assert snapshot(tmp_path) == reference


@pytest.mark.parametrize("lost", [["_stats.json"], ["_stats.json", ".parquet"]])
def test_a_shard_without_its_marker_is_redone(
    tmp_path: Path, data: Synthetic, settings: Settings, reference, lost: list[str]
) -> None:
    write(tmp_path, data, settings)
    last = sorted((tmp_path / "dataset").glob("train-*.tar"))[-1].name.removesuffix(".tar")
    for suffix in lost:  # as if killed after the tar (and parquet) were renamed into place
        (tmp_path / "dataset" / f"{last}{suffix}").unlink()
    summary = write(tmp_path, data, settings)
    assert summary.shards_written == (f"{last}.tar",)
    assert snapshot(tmp_path) == reference


def test_a_gap_in_the_shards_is_refused(tmp_path: Path, data: Synthetic, settings: Settings) -> None:
    write(tmp_path, data, settings)
    for suffix in (".tar", ".parquet", "_stats.json"):
        (tmp_path / "dataset" / f"train-000001{suffix}").unlink()
    with pytest.raises(RuntimeError, match="gaps"):
        write(tmp_path, data, settings)
