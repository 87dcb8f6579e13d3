"""What a user sees: `midshard demo` as a process without a terminal (plain progress lines per stage,
no Prefect chatter, no traceback at exit), the lines after a run (checked against the emulator's
ground truth) and the load line they print (run as printed), and `midshard status` on the demo's
data root. Plus the progress display's own rules on a fake clock."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from flows_kit import kept_keys, rejected_decisions
from rich.console import Console
from typer.testing import CliRunner

from midshard import progress
from midshard.flows.cli import app
from midshard.flows.report import load_line
from midshard.lock import root_lock
from midshard.raw_store import RawStore
from midshard.snowflakes import snowflake_time
from midshard.store import Store

MIDSHARD = [sys.executable, "-m", "midshard.flows.cli"]
DEMO = ["--seed", "1", "--channels", "1", "--messages", "30"]
README = Path(__file__).resolve().parents[2] / "README.md"
# Decisions taken before any download: a stored file of such a candidate was never looked at.
MESSAGE_LEVEL = {
    "not_midjourney",
    "not_a_generation",
    "progress",
    "image_conditioned",
    "empty_prompt",
    "grid",
}
STAGE_ENDS = ("history: ", "downloads: ", "images: ", "clean: ", "shards: ", "report: ")


@dataclass(frozen=True)
class Demo:
    out: Path
    stdout: str
    stderr: str
    truth: dict[str, str]  # candidate key -> decision, from the emulator's ground truth


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def funnel_key(decision: str) -> str:
    """How the funnel counts a decision: its reason code; download failures keep their cause."""
    return decision if decision.startswith("download_failed") else decision.split(":")[0]


def run_demo(home: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`midshard demo` from a fresh state (Prefect's home included) under `home`, in a process
    whose output is not a terminal; it must succeed."""
    fresh = ("MIDSHARD_", "PREFECT_")  # no server (the flow starts Prefect's embedded API), no level
    env = {name: value for name, value in os.environ.items() if not name.startswith(fresh)}
    env.pop("DISCORD_BOT_TOKEN", None)  # the demo needs none
    env["PREFECT_HOME"] = str(home / "prefect-home")
    env["MIDSHARD_CLEAN_WORKERS"] = "1"  # features in-process: the machine's cores are shared
    done = subprocess.run(
        [*MIDSHARD, "demo", *flags, "--out", str(home / "midshard-data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a hung process, not a speed target
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("demo")
    done = run_demo(home, *DEMO)
    lines = [json.loads(line) for line in invoke("emulator", "truth", *DEMO).splitlines()]
    truth = {c["key"]: c["decision"] for line in lines for c in line["candidates"]}
    return Demo(home / "midshard-data", done.stdout, done.stderr, truth)


@pytest.mark.prefect
def test_demo_runs_on_the_embedded_prefect_api(demo: Demo) -> None:
    assert "Prefect API: embedded" in demo.stdout
    funnel = {
        cells[0]: int(cells[1])
        for line in demo.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│┃ ").split("│")]) == 2 and cells[1].isdigit()
    }
    assert funnel["messages"] == 30
    assert funnel["in dataset: train"] + funnel.get("in dataset: validation", 0) == len(kept_keys(demo.out))
    assert (demo.out / "dataset" / "report.html").is_file()


@pytest.mark.prefect
def test_progress_without_a_terminal_is_one_plain_line_per_stage_and_no_traceback(demo: Demo) -> None:
    finished = [line for line in demo.stderr.splitlines() if " · done in " in line]
    assert [line.split(":")[0] + ": " for line in finished] == list(STAGE_ENDS)
    history, downloads, images, clean, shards, report = finished
    assert "30 messages" in history and "1 page" in history
    assert re.search(r"\d+ files \(\d+/s\)", downloads)
    examined = int(re.search(r"(\d+)/\1 images examined", images).group(1))
    assert examined == sum(1 for d in demo.truth.values() if funnel_key(d) not in MESSAGE_LEVEL)
    assert f"{len(demo.truth)} candidates decided" in clean
    assert f"{len(kept_keys(demo.out))} samples" in shards
    assert f"{len(rejected_decisions(demo.out))} rejections listed" in report
    assert "Traceback" not in demo.stderr and "Error" not in demo.stderr
    assert "| INFO" not in demo.stderr  # Prefect's console lines are quiet without --verbose


@pytest.mark.prefect
def test_verbose_brings_prefects_console_lines_back_beside_the_plain_progress(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--seed", "2", "--channels", "1", "--messages", "5", "--verbose")
    assert re.search(r"\| INFO +\| Flow run '[^']+' - Finished in state Completed", done.stderr)
    finished = [line.split(":")[0] + ": " for line in done.stderr.splitlines() if " · done in " in line]
    assert finished == list(STAGE_ENDS)
    assert "Traceback" not in done.stderr


SERVER_LEVEL_PROBE = """
import sys
from midshard.flows import prefect_env
prefect_env.configure(verbose=sys.argv[1] == "verbose")
from prefect.settings import get_current_settings
print(get_current_settings().server.logging_level)
"""


@pytest.mark.parametrize(("mode", "level"), [("quiet", "CRITICAL"), ("verbose", "WARNING")])
def test_the_embedded_servers_lines_are_quiet_unless_verbose(mode: str, level: str) -> None:
    """The embedded server logs a task-run flush cancelled by its own orderly stop as an error with a
    traceback; it starts from this process's settings, so its level is set here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_LOGGING")}
    probe = subprocess.run(
        [sys.executable, "-c", SERVER_LEVEL_PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    assert probe.stdout.split() == [level]


@pytest.mark.prefect
def test_after_a_run_the_new_samples_rejections_totals_report_and_load_line(demo: Demo) -> None:
    lines = {line.split(":")[0]: line for line in demo.stdout.splitlines() if ":  " in line or ": " in line}
    kept = Counter(name.split("-")[0] for name in _members(demo.out))
    dropped = Counter(funnel_key(d) for d in demo.truth.values() if d != "keep")
    this_run = lines["this run"]
    assert f"{kept['train']} train + {kept['validation']} validation samples" in this_run
    assert f"{sum(dropped.values())} dropped (" in this_run
    reported = dict(re.findall(r"([a-z_:]+) (\d+)", this_run.split("dropped (", 1)[1]))
    assert {reason: int(n) for reason, n in reported.items()} == dict(dropped)
    assert len(rejected_decisions(demo.out)) == sum(dropped.values())
    assert f"in {demo.out / 'dataset'}" in lines["dataset"]
    assert lines["report"] == f"report:   {demo.out / 'dataset' / 'report.html'}"
    printed = lines["load it"].removeprefix("load it:  ")
    assert printed == load_line(str(demo.out / "dataset"))
    loaded = subprocess.run(printed, shell=True, capture_output=True, text=True, timeout=300, check=True)
    assert loaded.stdout.split() == [str(kept["train"]), "train", "samples"]


def test_the_readme_shows_the_load_line_the_cli_prints() -> None:
    assert load_line("midshard-data/dataset", ".venv/bin/python") in README.read_text(encoding="utf-8")


def _members(root: Path) -> list[str]:
    """`train-…` / `validation-…` once per sample in the shards (the split from the file name)."""
    import tarfile

    names = []
    for shard in sorted((root / "dataset").glob("*.tar")):
        with tarfile.open(shard) as tar:
            keys = {member.name.split(".", 1)[0] for member in tar.getmembers()}
        names += [f"{shard.name}-{key}" for key in keys]
    return names


@pytest.mark.prefect
def test_status_json_tells_what_the_demo_root_holds(demo: Demo) -> None:
    status = json.loads(invoke("status", str(demo.out), "--json"))

    raw = RawStore(Store(str(demo.out)))
    (channel,) = raw.channels()
    ids = [int(key[:20]) for key in demo.truth]
    assert status["channels"] == [
        {
            "id": str(channel),
            "cursor": str(max(ids)),
            "newest_message": snowflake_time(max(ids)).isoformat().replace("+00:00", "Z"),
            "messages": len(set(ids)),
            "batches": len(list((demo.out / "raw" / "messages" / str(channel)).glob("*.jsonl.gz"))),
            "batches_not_cleaned": 0,
            "media_batches_pending": 0,
        }
    ]
    assert status["decisions"] == dict(Counter(funnel_key(d) for d in demo.truth.values()))
    failed = {reason: n for reason, n in status["decisions"].items() if reason.startswith("download")}
    assert status["downloads_failed"] == {reason.split(":", 1)[1]: n for reason, n in failed.items()}
    assert status["images_stored"] == _stored_candidates(raw, demo.truth)
    kept = Counter(name.split("-")[0] for name in _members(demo.out))
    dataset = status["dataset"]
    assert dataset["samples"] == {"train": kept["train"], "validation": kept["validation"]}
    assert dataset["shards"] == {
        split: len(list((demo.out / "dataset").glob(f"{split}-*.tar"))) for split in ("train", "validation")
    }
    assert dataset["rejected"] == len(rejected_decisions(demo.out))
    manifest = json.loads((demo.out / "dataset" / "manifest.json").read_text())
    assert dataset["settings_fingerprint"] == manifest["settings_fingerprint"]
    (run,) = status["runs"]
    assert (run["kind"], run["run_id"]) == ("scrape", manifest["runs"][0]["id"])
    assert run["finished"] and run["seconds"] > 0 and run["samples_written"] == dataset["samples"]
    assert status["held_by"] is None


def _stored_candidates(raw: RawStore, truth: dict[str, str]) -> int:
    """Candidates past the message-level steps whose attachment's bytes the raw store holds."""
    stored = {a for a, result in raw.attachment_results().items() if result.sha256}
    attachments = {}
    for _, message in raw.iter_messages():
        for index, attachment in enumerate(message.get("attachments", [])):
            attachments[(int(message["id"]), index)] = int(attachment["id"])
    past_message_steps = [key for key, decision in truth.items() if funnel_key(decision) not in MESSAGE_LEVEL]
    return sum(attachments.get((int(key[:20]), int(key[20:22]))) in stored for key in past_message_steps)


@pytest.mark.prefect
def test_status_names_the_run_that_holds_the_root(demo: Demo) -> None:
    with root_lock(str(demo.out), "a test holding the root"):
        screen = invoke("status", str(demo.out))
        held = json.loads(invoke("status", str(demo.out), "--json"))["held_by"]
    assert f"pid {os.getpid()}" in held and "a test holding the root" in held
    assert "held by pid" in screen and "channels" in screen and "last runs" in screen
    assert "no run holds it now" in invoke("status", str(demo.out))


def test_status_of_a_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", str(tmp_path / "nothing-here")])
    assert result.exit_code == 2 and "no data root at" in result.output


# -- the display on a fake clock -------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain(clock: Clock) -> tuple[progress.Board, progress.PlainLines, Callable[[], list[str]]]:
    """A board on `clock` with its plain lines (never started: the test ticks), and what they printed."""
    screen = io.StringIO()
    board = progress.Board(clock=clock)
    lines = progress.PlainLines(board, Console(file=screen, width=200), interval=60)
    return board, lines, lambda: screen.getvalue().splitlines()


def test_plain_lines_show_moving_stages_with_rates_and_eta_then_one_final_line() -> None:
    clock = Clock()
    board, lines, printed = plain(clock)
    board.expect("images", {"images": 1000})
    board.add("images", None, {"images": 250, "cached": 40})
    clock.now += 10
    lines.tick()
    assert printed() == ["images: 250/1,000 images examined (25/s, ETA 30 s) · 40 from the cache"]
    lines.tick()  # nothing moved: no new line
    assert len(printed()) == 1
    board.add("downloads", None, {"files": 3, "bytes": 4_500_000, "failed": 1})
    clock.now += 5
    lines.tick()
    assert printed()[1:] == ["downloads: 3 files (1/s) · 4.5 MB (0.9 MB/s) · 1 failed"]
    board.add("images", None, {"images": 750})
    clock.now += 65
    board.finish("images")
    final = "images: 1,000/1,000 images examined (12/s) · 40 from the cache · done in 1 min 20 s"
    assert printed()[-1] == final
    lines.tick()  # neither the finished stage nor the one that did not move prints again
    assert len(printed()) == 3


def test_groups_count_per_channel_and_a_display_inside_another_shows_nothing_twice() -> None:
    screen = io.StringIO()
    with (
        progress.shown(Console(file=screen, width=200), live=False) as outer,
        progress.shown() as inner,  # a flow run by the CLI
    ):
        assert inner is outer
        progress.report("history", "channel 1", pages=1, messages=100)
        progress.report("history", "channel 2", pages=2, messages=150)
    assert outer.stages["history"].group_lines() == [
        "channel 2: 2 pages, 150 messages",
        "channel 1: 1 page, 100 messages",
    ]
    (final,) = screen.getvalue().splitlines()
    assert final.startswith("history: 3 pages · 250 messages (") and " · done in " in final
    progress.report("history", pages=1)  # nobody watches now: nothing to do, nothing kept
    assert outer.stages["history"].counts["pages"] == 3
