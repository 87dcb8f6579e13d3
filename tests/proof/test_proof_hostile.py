"""Hostile input ends in a reason code or a clear error, never a crash, and loses nothing else of
the same run: malformed message JSON through `midshard explain`; broken DiscordChatExporter files
through `midshard import-export`; and an export whose media folder holds broken, animated, bomb,
mislabelled, traversing and oddly named files, next to good images, through the import flow.
(The emulator's own hostile files and names reach the scrape flow in tests/flows and in the proof
kill test: their decisions are the emulator's truth.)"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from flows_kit import PrefectServer, kept_keys, rejected_decisions
from PIL import Image
from typer.testing import CliRunner

from midshard.flows.cli import app
from midshard.raw_store import RawStore
from midshard.records import candidate_key
from midshard.settings import MIDJOURNEY_BOT_ID, Settings
from midshard.store import Store

CHANNEL = 1200000000000000077
FIRST_ID = 1240000000000000000
LONG_PROMPT = "a lighthouse " + "and a very long tail of words " * 3400  # ~100 kB
MENTION = "<@1012268717368946718>"


# -- files ---------------------------------------------------------------------------------------
def _picture(seed: int, size: int = 1024) -> Image.Image:
    """A smooth random picture: distinct seeds are far apart in pHash."""
    low = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header declares `width` x `height` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _animated(fmt: str) -> bytes:
    frames = [_picture(90 + i) for i in range(2)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


GOOD = _encode(_picture(1), "JPEG", quality=90)
CASES: dict[str, tuple[str, bytes | None, set[str]]] = {
    # name: (file name, bytes or None = no file, acceptable decisions)
    "good_jpeg": ("lighthouse.jpg", GOOD, {"keep"}),
    "good_webp": ("lighthouse.webp", _encode(_picture(2), "WEBP", quality=80), {"keep"}),
    "png_named_jpg": ("really a png.jpg", _encode(_picture(3), "PNG"), {"keep"}),
    "unicode_name": ("猫 ✨ e\u0301moji 🐉 \u202efdp.exe.png", _encode(_picture(4), "JPEG"), {"keep"}),
    "nul_prompt": ("nul.jpg", _encode(_picture(5), "JPEG"), {"keep"}),
    "long_prompt": ("long.jpg", _encode(_picture(6), "JPEG"), {"keep"}),
    "animated_gif": ("anim.gif", _animated("GIF"), {"animated_image"}),
    "animated_webp": ("anim.webp", _animated("WEBP"), {"animated_image"}),
    "animated_png": ("anim.png", _animated("PNG"), {"animated_image"}),
    "corrupt_png": (
        "corrupt.png",
        _encode(_picture(7), "PNG")[:60] + bytes(range(256)) * 40,
        {"corrupt_image", "truncated_image"},
    ),
    "truncated_jpeg": ("cut.jpg", _encode(_picture(8), "JPEG")[:5000], {"truncated_image"}),
    "zero_bytes": ("empty.png", b"", {"empty_file"}),
    "bomb": ("bomb.png", _png_claiming(30000, 30000), {"decompression_bomb"}),
    "html_as_png": (
        "page.png",
        b"<!doctype html><html><body>not an image</body></html>",
        {"not_an_image", "corrupt_image"},
    ),
    "text_as_jpg": ("notes.jpg", b"just some text\n" * 20, {"not_an_image", "corrupt_image"}),
    "tiny": ("tiny.png", _encode(_picture(9, 32), "PNG"), {"too_small"}),
    "duplicate": ("copy.jpg", GOOD, {f"duplicate_of:{candidate_key(FIRST_ID)}"}),
    "traversal": ("..\\..\\outside.jpg", None, {"download_failed:missing_local_file"}),
    "absolute": ("/etc/passwd", None, {"download_failed:missing_local_file", "not_an_image"}),
    "nul_in_name": ("x\u0000.jpg", None, {"download_failed:missing_local_file"}),
    "percent_nul": ("x%00.jpg", None, {"download_failed:missing_local_file"}),
}
OUTSIDE = _encode(_picture(99), "JPEG")  # beside the export folder: must never be read


def _hostile_export(folder: Path) -> Path:
    name = f"Guild - mj [{CHANNEL}].json"
    media = folder / "export" / f"{name}_Files"
    media.mkdir(parents=True)
    (folder / "outside.jpg").write_bytes(OUTSIDE)
    messages = []
    for number, (case, (file_name, data, _)) in enumerate(CASES.items()):
        message_id = FIRST_ID + number * 4096
        reference = f"{name}_Files\\{message_id}-{file_name}" if data is not None else file_name
        if case == "traversal":
            reference = f"{name}_Files\\..\\..\\..\\outside.jpg"
        if data is not None:
            (media / f"{message_id}-{file_name}").write_bytes(data)
        prompt = {"nul_prompt": "a lighthouse\u0000 at dusk", "long_prompt": LONG_PROMPT}.get(
            case, f"a {case}"
        )
        messages.append(
            {
                "id": str(message_id),
                "type": "Reply",
                "timestamp": "2024-05-01T10:00:00.123+00:00",
                "content": f"**{prompt} --ar 1:1 --v 6** - Image #1 {MENTION}",
                "author": {"id": str(MIDJOURNEY_BOT_ID), "name": "Midjourney Bot", "isBot": True},
                "attachments": [
                    {
                        "id": str(message_id - 1),
                        "url": reference,
                        "fileName": file_name,
                        "fileSizeBytes": len(data or b""),
                    }
                ],
                "embeds": [],
            }
        )
    document = {
        "guild": {"id": "1", "name": "g"},
        "channel": {"id": str(CHANNEL), "name": "mj"},
        "messages": messages,
    }
    path = folder / "export" / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.prefect
def test_hostile_media_in_an_export_through_the_import_flow(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    from midshard.flows.pipeline import import_export

    export = _hostile_export(tmp_path)
    root = tmp_path / "data"
    settings = Settings.load(root=str(root), clean_workers=1, download="all")
    result = import_export(settings, [str(export)], media=True)

    decisions = {key: "keep" for key in kept_keys(root)} | rejected_decisions(root)
    expected = {candidate_key(FIRST_ID + n * 4096): case for n, case in enumerate(CASES)}
    assert set(decisions) == set(expected)  # every candidate decided once: nothing lost
    wrong = {case: decisions[key] for key, case in expected.items() if decisions[key] not in CASES[case][2]}
    assert not wrong
    assert sum(result.dataset.values()) == 6

    samples = list(
        wds.WebDataset(sorted(str(p) for p in (root / "dataset").glob("*.tar")), shardshuffle=False)
    )
    assert len(samples) == 6
    by_key = {s["__key__"]: s for s in samples}
    png_as_jpg = by_key[candidate_key(FIRST_ID + list(CASES).index("png_named_jpg") * 4096)]
    assert "png" in png_as_jpg and json.loads(png_as_jpg["json"])["image_format"] == "png"
    nul = by_key[candidate_key(FIRST_ID + list(CASES).index("nul_prompt") * 4096)]
    assert nul["txt"].decode() == "a lighthouse at dusk"  # control characters are not prompt text
    long = by_key[candidate_key(FIRST_ID + list(CASES).index("long_prompt") * 4096)]
    assert long["txt"].decode() == LONG_PROMPT.strip()

    raw = RawStore(Store(str(root)))
    stored = {raw.read_media(r.sha256) for r in raw.attachment_results().values() if r.sha256}
    assert OUTSIDE not in stored  # the traversal did not read outside the export folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "export", "outside.jpg"]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in root.rglob("*"))


# -- message JSON --------------------------------------------------------------------------------
def _message(n: int, prompt: str, **fields: object) -> dict:
    message_id = str(FIRST_ID + n * 4096)
    attachment = {
        "id": str(int(message_id) - 1),
        "filename": "x.png",
        "size": 2_000_000,
        "url": f"https://cdn.discordapp.com/attachments/1/{int(message_id) - 1}/x.png",
        "content_type": "image/png",
        "width": 1024,
        "height": 1024,
    }
    return {
        "id": message_id,
        "type": 19,
        "channel_id": str(CHANNEL),
        "timestamp": "2024-05-01T10:00:00.123000+00:00",
        "content": f"**{prompt} --ar 1:1** - Image #1 {MENTION}",
        "author": {"id": str(MIDJOURNEY_BOT_ID), "username": "Midjourney Bot", "bot": True},
        "attachments": [attachment],
        "embeds": [],
        "components": [],
    } | fields


HOSTILE_LINES: list[bytes | dict] = [
    b"{not json",
    b'{"id": "1240000000000000000", "content": "cut he',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b"\xff\xfe\x00garbage",
    b'{"id": NaN}',
    {"id": "not a snowflake"},
    {"id": -5},
    {"id": 2**80},
    {"id": 1.5e30},
    {"id": True},
    {"content": "no id"},
    _message(1, "x") | {"attachments": "not a list"},
    _message(2, "x") | {"attachments": [None, 5, "x"]},
    _message(3, "x") | {"author": None},
    _message(4, "x") | {"author": "Midjourney Bot"},
    _message(5, "x") | {"content": 12345},
    _message(6, "x") | {"content": None},
    _message(7, "x") | {"embeds": [None]},
    _message(8, "x") | {"components": [[{"type": "x"}]]},
    _message(9, "x") | {"message_reference": 5},
    _message(10, "x") | {"type": "nineteen"},
    _message(11, "x") | {"timestamp": "yesterday"},
    _message(12, "x") | {"attachments": [{"id": "1", "width": "huge", "height": None, "size": -1}]},
]


def test_malformed_and_extreme_messages_through_explain(tmp_path: Path) -> None:
    good = [_message(20, "a red fox"), _message(21, "a lighthouse\u0000 at dusk"), _message(22, LONG_PROMPT)]
    lines = [good[0], *HOSTILE_LINES[:10], good[1], *HOSTILE_LINES[10:], good[2]]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(
        b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)
    )
    code = "from midshard.flows.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "explain", str(path)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(answers) == len(lines)  # one answer per line: an explanation or the line's error
    for line, answer in zip(lines, answers, strict=True):
        assert ("error" in answer and "line" in answer) or set(answer) >= {"id", "decision"}, (line, answer)
        if "error" in answer:
            assert answer["error"] and len(answer["error"]) < 1000
    by_id = {a["id"]: a for a in answers if "id" in a}
    assert [by_id[m["id"]]["decision"] for m in good] == ["keep"] * 3
    assert by_id[good[1]["id"]]["prompt"] == "a lighthouse at dusk"
    assert by_id[good[2]["id"]]["prompt"] == LONG_PROMPT.strip()


# -- broken exports --------------------------------------------------------------------------------
def _export(messages: object, **extra: object) -> dict:
    return {"guild": {"id": "1"}, "channel": {"id": str(CHANNEL)}, "messages": messages, **extra}


BROKEN_EXPORTS: dict[str, bytes] = {
    "empty.json": b"",
    "bom_only.json": b"\xef\xbb\xbf",
    "nested.json": b"[" * 100_000 + b"]" * 100_000,
    "nested_field.json": b'{"channel": {"id": "1"}, "messages": [], "x": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    "messages_not_list.json": json.dumps(_export({"0": {"id": "1"}})).encode(),
    "message_not_object.json": json.dumps(_export(["hello"])).encode(),
    "attachments_not_list.json": json.dumps(_export([{"id": str(FIRST_ID), "attachments": "x"}])).encode(),
    "channel_id_number.json": json.dumps({"channel": {"id": 12}, "messages": []}).encode(),
    "utf16.json": json.dumps(_export([])).encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_EXPORTS))
def test_broken_exports_are_refused_with_a_clear_error(tmp_path: Path, name: str) -> None:
    broken = tmp_path / name
    broken.write_bytes(BROKEN_EXPORTS[name])
    root = tmp_path / "data"
    result = CliRunner().invoke(app, ["import-export", str(broken), "--out", str(root), "--raw-only"])
    assert result.exit_code == 2, result.output
    assert f"error: {broken}:" in result.output and "Traceback" not in result.output
    assert not root.exists()


def test_an_export_without_its_media_folder_records_every_file_missing(tmp_path: Path) -> None:
    export = _hostile_export(tmp_path)
    for path in sorted(export.parent.glob("*_Files/*"), reverse=True):
        path.unlink()
    export.with_name(export.name + "_Files").rmdir()
    root = tmp_path / "data"
    result = CliRunner().invoke(
        app, ["import-export", str(export), "--out", str(root), "--raw-only", "--media", "--download", "all"]
    )
    assert result.exit_code == 0, result.output
    results = RawStore(Store(str(root))).attachment_results()
    assert len(results) == len(CASES)
    assert {r.error for r in results.values()} == {"missing_local_file"}
