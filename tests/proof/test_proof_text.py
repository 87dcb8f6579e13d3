"""Text at the boundary. A lone surrogate (a `\\udXXX` JSON escape without its pair: valid JSON that
no UTF-8 file, Parquet column or terminal accepts) in any field costs nothing else: `explain`
answers every line, an import keeps every message, and the raw store keeps the message exactly as
received. Captions lose bidi controls and zero-width characters (joiners stay only where they join
non-ASCII characters), and a candidate whose clean prompt is empty is dropped as `empty_prompt`."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from midshard.flows.cli import app
from midshard.raw_store import RawStore
from midshard.settings import MIDJOURNEY_BOT_ID
from midshard.store import Store

CHANNEL = 1200000000000000077
FIRST_ID = 1240000000000000000
MENTION = "<@1012268717368946718>"


def _message(n: int, prompt: str, filename: str = "x.png", author: str = "Midjourney Bot") -> str:
    """One Midjourney upscale as API JSON text; `prompt`, `filename` and `author` (the bot's user
    name) are pasted in as JSON source, so they may hold escapes such as a lone `\\ud83d`."""
    message_id = FIRST_ID + n * 4096
    return (
        f'{{"id": "{message_id}", "type": 19, "channel_id": "{CHANNEL}",'
        f' "content": "**{prompt} --ar 1:1** - Image #1 {MENTION}",'
        f' "author": {{"id": "{MIDJOURNEY_BOT_ID}", "username": "{author}"}},'
        f' "attachments": [{{"id": "{message_id - 1}", "filename": "{filename}", "size": 2000000,'
        f' "url": "https://cdn.discordapp.com/attachments/1/{message_id - 1}/{filename}",'
        f' "content_type": "image/png", "width": 1024, "height": 1024}}]}}'
    )


def _explain(lines: list[str]) -> list[dict]:
    """`midshard explain` as a process: what a user sees, bytes included."""
    done = subprocess.run(
        [sys.executable, "-m", "midshard.flows.cli", "explain", "-"],
        input="\n".join(lines).encode("ascii"),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]  # strict UTF-8


def test_lone_surrogates_in_any_field_cost_nothing_else_in_explain() -> None:
    lines = [
        _message(0, "a red fox"),
        _message(1, "a fox \\ud83d in the snow"),  # half of an emoji
        _message(2, "\\udfff"),  # a low surrogate alone: nothing else left to caption
        _message(3, "a lighthouse", filename="x\\ud800.png", author="Midjourney Bot\\udc80"),
        _message(4, "a fox \\ud83d\\ude00 grinning"),  # a proper pair: one emoji, kept
    ]
    answers = _explain(lines)
    assert [a["id"] for a in answers] == [str(FIRST_ID + n * 4096) for n in range(5)]
    assert [a["prompt"] for a in answers] == [
        "a red fox",
        "a fox \ufffd in the snow",
        "\ufffd",
        "a lighthouse",
        "a fox \U0001f600 grinning",
    ]
    assert {a["decision"] for a in answers} == {"keep"}


def test_an_import_keeps_every_message_and_stores_it_as_received(tmp_path: Path) -> None:
    messages = [
        _message(n, prompt) for n, prompt in enumerate(["Straße at night", "a fox \\ud83d", "an owl"])
    ]
    export = tmp_path / "export.json"
    export.write_text(
        f'{{"guild": {{"id": "1", "name": "g\\udcff"}}, "channel": {{"id": "{CHANNEL}", "name": "mj"}},'
        f' "messages": [{", ".join(messages)}]}}',
        encoding="utf-8",
    )
    root = tmp_path / "data"
    result = CliRunner().invoke(app, ["import-export", str(export), "--out", str(root), "--raw-only"])
    assert result.exit_code == 0, result.output

    raw = RawStore(Store(str(root)))
    stored = [message for _, message in raw.iter_messages(CHANNEL)]
    assert stored == [json.loads(m) for m in messages]  # lossless: the lone surrogates included
    (batch,) = raw.message_batches(CHANNEL)
    lines = gzip.decompress((root / batch).read_bytes()).decode("utf-8").splitlines()
    assert "Straße" in lines[0] and lines[2].isascii()  # lines as usual: non-ASCII as it is
    assert lines[1].isascii() and "\\ud83d" in lines[1]  # this one escaped, so the file stays UTF-8
    headers = list((root / "raw" / "exports").iterdir())
    assert json.loads(headers[0].read_text(encoding="utf-8"))["guild"]["name"] == "g\udcff"


INVISIBLE = {
    # prompt as written (JSON source) -> caption
    "n\\u200bude figure": "nude figure",  # zero-width space hiding a word
    "a \\u202eeulb\\u202c sky": "a eulb sky",  # right-to-left override: shown backwards, stored as typed
    "\\u2066isolated\\u2069 \\u200eleft\\u200f": "isolated left",
    "word\\u2060joiner \\ufeffbom": "wordjoiner bom",
    "ca\\u200dt \\u200cdog\\u200c": "cat dog",  # joiners inside or beside ASCII only hide
    # woman, ZWJ, laptop: one emoji
    "coder \\ud83d\\udc69\\u200d\\ud83d\\udcbb at work": "coder \U0001f469\u200d\U0001f4bb at work",
    "\\u0645\\u06cc\\u200c\\u0631\\u0645": "\u0645\u06cc\u200c\u0631\u0645",  # Persian "I go": a half-space
    "\\u0915\\u094d\\u200d\\u0937": "\u0915\u094d\u200d\u0937",  # Devanagari half form: ZWJ kept
}


def test_captions_lose_bidi_controls_and_zero_width_characters() -> None:
    answers = _explain([_message(n, prompt) for n, prompt in enumerate(INVISIBLE)])
    assert [a["prompt"] for a in answers] == list(INVISIBLE.values())


EMPTY = ["--v 6", "\\u200b\\u200d", "::2 ::", "<https://s.mj.run/abc> --iw 2", "\\u202e \\u202c"]


def test_a_candidate_without_a_clean_prompt_is_dropped_as_empty_prompt() -> None:
    answers = _explain([_message(n, prompt) for n, prompt in enumerate(EMPTY)])
    by_prompt = dict(zip(EMPTY, answers, strict=True))
    conditioned = by_prompt.pop("<https://s.mj.run/abc> --iw 2")
    assert conditioned["decision"] == "image_conditioned"  # `text_only` comes first
    assert all(a["prompt"] == "" and a["decision"] == "empty_prompt" for a in by_prompt.values()), by_prompt
