"""`midshard explain` as a user runs it: a subprocess reading JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mj_messages import USER_ID, api_message, attachment, snowflake, to_dce

M = f"<@{USER_ID}>"
FIELDS = ["id", "kind", "image_conditioned", "prompt", "params", "image_urls", "decision"]


def _explain(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    code = "from midshard.flows.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "explain", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )


def _lines(messages: list) -> bytes:
    return b"".join(
        (m if isinstance(m, bytes) else json.dumps(m, ensure_ascii=False).encode()) + b"\n" for m in messages
    )


@pytest.mark.slow
def test_explain_file(tmp_path: Path) -> None:
    crop_of_variation = api_message(3, f"**a fox --v 5** - Image #1 {M}", parent=2)
    lines = [
        crop_of_variation,  # its parent comes later in the input
        api_message(2, f"**a fox --v 5** - Variations (Strong) by {M} (fast)"),
        to_dce(api_message(4, f"**a fox, --ar 3:2 --no cat** - Image #2 {M}")),
        b"{not json",
        api_message(5, f"**a tiny fox** - Image #3 {M}", attachments=[attachment(51, width=512, height=512)]),
        b"",
        {"id": "nope"},
        b"\xff\xfe",
        api_message(6, "hello", author_id=USER_ID),
        api_message(7, f"**a fox** - {M} (fast)"),
        api_message(8, "Animating..."),  # an image-to-video job announced
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines(lines))
    done = _explain(str(path))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [list(o) for o in out if "error" not in o] == [FIELDS] * 7
    assert [o.get("line") for o in out] == [None, None, None, 4, None, 7, 8, None, None, None]
    by_id = {o["id"]: o for o in out if "id" in o}
    assert by_id[snowflake(3)] == {
        "id": snowflake(3),
        "kind": "upscale",
        "image_conditioned": True,
        "prompt": "a fox",
        "params": {"version": "5"},
        "image_urls": [],
        "decision": "image_conditioned",
    }
    assert by_id[snowflake(2)]["kind"] == "variation"
    assert by_id[snowflake(4)] == {
        "id": snowflake(4),
        "kind": "upscale",
        "image_conditioned": False,
        "prompt": "a fox",
        "params": {"aspect": "3:2", "no": "cat"},
        "image_urls": [],
        "decision": "keep",
    }
    assert by_id[snowflake(5)]["decision"] == "too_small:message_only"
    assert (
        by_id[snowflake(6)]["kind"] == "not_midjourney"
        and by_id[snowflake(6)]["decision"] == "not_midjourney"
    )
    assert by_id[snowflake(7)]["decision"] == "grid"
    assert by_id[snowflake(8)] == {
        "id": snowflake(8),
        "kind": "video",
        "image_conditioned": True,
        "prompt": "",
        "params": {},
        "image_urls": [],
        "decision": "image_conditioned",
    }


@pytest.mark.slow
def test_explain_stdin_settings_and_unreadable_input(tmp_path: Path) -> None:
    grid = api_message(1, f"**a fox** - {M} (fast)")
    done = _explain("-", "--grids", "split", "--min-side", "1025", stdin=_lines([grid]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"] == "too_small:message_only"  # 1024 px tiles
    done = _explain("--grids", "split", stdin=_lines([grid]))
    assert json.loads(done.stdout)["decision"] == "keep"
    missing = _explain(str(tmp_path / "missing.jsonl"))
    assert missing.returncode != 0 and b"missing.jsonl" in missing.stderr and not missing.stdout


@pytest.mark.slow
def test_message_only_path_imports_nothing_heavy() -> None:
    code = (
        "import sys; from midshard.cleaners.explain import explain_lines;"
        "from midshard.settings import Settings;"
        'list(explain_lines([b\'{"id": "1"}\'], Settings()));'
        "print(sorted(m for m in ('prefect', 'onnxruntime', 'torch', 'pyarrow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
