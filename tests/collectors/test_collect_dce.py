"""DiscordChatExporter import: our own exports of both shapes (with and without a media folder,
valid and hostile), generated ones, broken files, and optionally two real 2023 exports."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from collector_kit import TOKEN, emulator_config, files_under, running, served_message
from dce_files import MakeExport, dce_document, dce_from_api, dce_message, write_json
from dce_fixtures import EXPORT_2023, EXPORT_CURRENT, EXPORT_HOSTILE, EXPORT_REFUSED, OUTSIDE, real_exports
from pydantic import SecretStr
from typer.testing import CliRunner

from midshard.cleaners.decisions import DecisionStore
from midshard.cleaners.pipeline import Downloadable, clean
from midshard.collectors.dce import ExportError, import_exports, read_export
from midshard.flows.cli import app
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store


def settings_for(root: Path, **extra: object) -> Settings:
    return Settings.load(root=str(root), **extra)


def stored_as_exported(raw: RawStore, path: Path) -> dict:
    """Check that an imported export is in the raw store losslessly; its document."""
    document = json.loads(path.read_text(encoding="utf-8-sig"))
    channel_id = int(document["channel"]["id"])
    stored = [m for _, m in raw.iter_messages(channel_id)]
    expected = sorted(document["messages"], key=lambda m: int(m["id"]))
    # lossless: the same objects, the same key order, fields midshard does not read included
    assert [json.dumps(m) for m in stored] == [json.dumps(m) for m in expected]
    assert all(len(raw.read_batch(b)) <= 100 for b in raw.message_batches(channel_id))
    header = json.loads(
        raw.store.read_text(raw.export_header_path(hashlib.sha256(path.read_bytes()).hexdigest()))
    )
    assert header == {k: v for k, v in document.items() if k != "messages"}
    return document


def test_a_2023_export_with_its_media_folder(tmp_path: Path) -> None:
    root = tmp_path / "data"
    stats = import_exports(settings_for(root, download="all"), [EXPORT_2023], media=True)
    raw = RawStore(Store(str(root)))
    document = stored_as_exported(raw, EXPORT_2023)
    assert stats.messages == len(document["messages"]) == 7

    declared = {int(a["id"]): a for m in document["messages"] for a in m["attachments"]}
    results = raw.attachment_results(int(document["channel"]["id"]))
    assert set(results) == set(declared)
    for attachment_id, result in results.items():
        local = EXPORT_2023.parent / declared[attachment_id]["url"].replace("\\", "/")
        if local.is_file():  # the export's own file, byte for byte
            assert raw.read_media(result.sha256) == local.read_bytes()
        else:
            assert result.error == "missing_local_file"
    assert stats.media_files == 3 and stats.failures == {"missing_local_file": 1}

    again = import_exports(settings_for(root, download="all"), [EXPORT_2023], media=True)
    assert again.messages == 0 and again.already_stored == 7


def test_a_current_export_keeps_its_links_for_a_later_media_import(tmp_path: Path) -> None:
    root = tmp_path / "data"
    stats = import_exports(settings_for(root), [EXPORT_CURRENT], media=False)
    raw = RawStore(Store(str(root)))
    document = stored_as_exported(raw, EXPORT_CURRENT)
    channel_id = int(document["channel"]["id"])
    assert stats.messages == 6 and raw.attachment_results(channel_id) == {}
    assert len(raw.pending_media_batches(channel_id)) == 1  # its links wait for `--media`


def test_a_hostile_export_loses_no_message_and_reads_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "data"
    settings = settings_for(root, download="all", nsfw_scorer="none", clean_workers=1)
    import_exports(settings, [EXPORT_HOSTILE], media=True)
    raw = RawStore(Store(str(root)))
    document = stored_as_exported(raw, EXPORT_HOSTILE)
    results = raw.attachment_results()
    by_name = {a["fileName"]: results[int(a["id"])] for m in document["messages"] for a in m["attachments"]}
    assert {name: r.error for name, r in by_name.items() if not r.sha256} == {
        "outside.png": "missing_local_file",  # ..\..\outside.png: outside the export folder
        "passwd.png": "missing_local_file",  # an absolute path
        "passwd2.png": "scheme_not_allowed",  # file:///etc/passwd
        "metadata.png": "host_not_allowed",  # a loopback address
        "lies.png": "size_mismatch",
        "nul.png": "missing_local_file",
        "missing.png": "missing_local_file",
    }
    stored = {raw.read_media(r.sha256) for r in results.values() if r.sha256}
    assert OUTSIDE.read_bytes() not in stored and len(stored) == 2

    clean(raw, Store(str(root)), settings)  # every candidate gets one reason, nothing crashes
    decisions = DecisionStore(Store(str(root))).table(["decision"]).column("decision").to_pylist()
    assert len(decisions) == len(document["messages"])
    assert sorted(set(decisions)) == [
        "download_failed:host_not_allowed",
        "download_failed:missing_local_file",
        "download_failed:scheme_not_allowed",
        "download_failed:size_mismatch",
        "keep",  # the one good image
        "not_an_image",  # text named .png
    ]


def test_an_export_with_one_bad_id_is_refused_whole(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with pytest.raises(ExportError, match=r"message #1: message id .* is not a snowflake") as caught:
        import_exports(settings_for(root), [EXPORT_2023, EXPORT_REFUSED], media=False)
    assert str(EXPORT_REFUSED) in str(caught.value)
    assert not root.exists()  # the good export was not imported either


def test_real_exports_import_every_message_and_record_missing_media(tmp_path: Path) -> None:
    """The optional extra check: DCE's own output from 2023 (tests/dce_fixtures.py says where)."""
    exports = real_exports()
    root = tmp_path / "data"
    stats = import_exports(settings_for(root, download="all"), exports, media=True)
    raw = RawStore(Store(str(root)))
    for path in exports:
        document = stored_as_exported(raw, path)
        channel_id = int(document["channel"]["id"])
        results = raw.attachment_results(channel_id)
        assert set(results) == {int(a["id"]) for m in document["messages"] for a in m["attachments"]}
        assert {r.error for r in results.values()} <= {"missing_local_file"}  # the files are not shipped
        assert raw.pending_media_batches(channel_id) == []
    assert stats.messages == 40 and stats.failures == {"missing_local_file": 7}


def test_export_with_media_folder_imports_every_attachment(
    tmp_path: Path, make_dce_export: MakeExport
) -> None:
    export, files = make_dce_export(n=130)
    root = tmp_path / "data"
    stats = import_exports(settings_for(root, download="all"), [export], media=True)
    raw = RawStore(Store(str(root)))
    channel_id = read_export(export).channel_id

    assert stats.messages == 130 and stats.batches == 2  # 100 + 30
    results = raw.attachment_results(channel_id)
    assert set(results) == set(files)
    for attachment_id, data in files.items():
        assert raw.read_media(results[attachment_id].sha256) == data
    assert stats.media_files == len(files) and not stats.failures

    # importing again adds nothing and rewrites nothing
    before = files_under(root)
    again = import_exports(settings_for(root, download="all"), [export], media=True)
    assert again.messages == 0 and again.already_stored == 130 and again.media_files == 0
    assert files_under(root) == before


def test_default_download_takes_only_media_that_can_pass_the_filters(
    tmp_path: Path, make_dce_export: MakeExport
) -> None:
    export, files = make_dce_export(n=30, seed=4)
    root = tmp_path / "data"
    settings = settings_for(root)  # download = "filtered": the caller passes the cleaners' filter
    import_exports(settings, [export], media=True, select=Downloadable(settings))
    document = read_export(export)
    upscales = {
        int(a["id"]) for m in document.messages if "Image #1" in m["content"] for a in m["attachments"]
    }
    results = RawStore(Store(str(root))).attachment_results()
    assert upscales and set(results) == set(files)
    assert {aid for aid, r in results.items() if r.sha256} == upscales
    assert {r.error for aid, r in results.items() if aid not in upscales} == {"not_selected"}


def test_media_can_follow_a_messages_only_import(tmp_path: Path, make_dce_export: MakeExport) -> None:
    export, files = make_dce_export(n=40, seed=3)
    root = tmp_path / "data"
    settings = settings_for(root, download="all")
    import_exports(settings, [export], media=False)
    raw = RawStore(Store(str(root)))
    channel_id = read_export(export).channel_id
    assert raw.attachment_results(channel_id) == {}
    assert len(raw.pending_media_batches(channel_id)) == 1

    import_exports(settings, [export], media=True)
    assert {r.attachment_id for r in raw.attachment_results(channel_id).values() if r.sha256} == set(files)


def test_size_mismatch_and_too_large_local_files(tmp_path: Path, make_dce_export: MakeExport) -> None:
    export, files = make_dce_export(n=6, seed=5)
    document = json.loads(export.read_text(encoding="utf-8-sig"))
    with_files = [a for m in document["messages"] for a in m["attachments"]]
    with_files[0]["fileSizeBytes"] += 1  # the export lies about the size
    write_json(export, document)
    root = tmp_path / "data"
    biggest = max(len(files[int(a["id"])]) for a in with_files[1:])
    import_exports(settings_for(root, download="all", max_file_size=biggest - 1), [export], media=True)
    results = RawStore(Store(str(root))).attachment_results()
    assert results[int(with_files[0]["id"])].error == "size_mismatch"
    assert any(r.error == "too_large" for r in results.values())
    assert all(r.sha256 or r.error for r in results.values())


def test_export_with_urls_downloads_like_the_api(tmp_path: Path, emulator_cache: Path) -> None:
    with running(emulator_config(emulator_cache, channels=1, messages=60, link_ttl=600.0)) as emulator:
        channel_id = emulator.channel_ids[0]
        exports = {}
        for name, signed_at in (("fresh", None), ("expired", time.time() - 3600)):
            served = [served_message(emulator, channel_id, i, now=signed_at) for i in range(60)]
            messages = [dce_from_api(m) for m in served]
            exports[name] = write_json(tmp_path / f"{name}.json", dce_document(channel_id, messages))
        sizes = {int(a["id"]): a["size"] for m in served for a in m["attachments"]}
        servable = {aid for aid, size in sizes.items() if size <= 300_000}
        base = {"download": "all", "max_file_size": 300_000, "api_base": emulator.api_base}

        def imported(name: str, **extra: object) -> dict:
            root = tmp_path / f"data-{name}-{len(extra)}"
            import_exports(settings_for(root, **base, **extra), [exports[name]], media=True)
            return RawStore(Store(str(root))).attachment_results()

        fresh = imported("fresh")  # no token needed while the links are valid
        assert servable and {aid for aid, r in fresh.items() if r.sha256} == servable
        assert {r.error for aid, r in fresh.items() if aid not in servable} == {"too_large"}

        stale = imported("expired")  # no token: an expired link cannot be re-signed
        assert {stale[aid].error for aid in servable} == {"expired"}

        emulator.reset_stats()
        refreshed = imported("expired", token=SecretStr(TOKEN))
        assert {aid: r.sha256 for aid, r in refreshed.items() if r.sha256} == {
            aid: r.sha256 for aid, r in fresh.items() if r.sha256
        }
        assert emulator.stats()["refreshed_urls"] >= len(servable)


BROKEN = {
    "not_json.json": (b"<html>not an export</html>", "not valid JSON"),
    "truncated.json": (None, "not valid JSON"),
    "no_messages.json": (b'{"guild": {}, "channel": {"id": "1"}}', "missing messages"),
    "no_channel_id.json": (b'{"channel": {"name": "x"}, "messages": []}', "channel.id"),
    "bad_message.json": (b'{"channel": {"id": "1"}, "messages": [{"content": "x"}]}', "message #0"),
    "count_mismatch.json": (None, "messageCount is 3"),
    "array.json": (b"[1, 2]", "top level is not an object"),
    "latin1.json": ('{"channel": "é"}'.encode("latin-1"), "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_export_is_refused_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    good = write_json(tmp_path / "good.json", dce_document(7, [dce_message(1300000000000000000, [])]))
    content, expected = BROKEN[name]
    if name == "truncated.json":
        content = good.read_bytes()[:-40]
    if name == "count_mismatch.json":
        document = dce_document(8, [dce_message(1300000000000000000, [])])
        document["messageCount"] = 3
        content = json.dumps(document).encode()
    broken = tmp_path / name
    broken.write_bytes(content)
    root = tmp_path / "data"

    with pytest.raises(ExportError, match=expected) as caught:
        import_exports(settings_for(root), [good, broken], media=True)
    assert str(broken) in str(caught.value)
    assert not root.exists()  # the good file was not imported either

    result = CliRunner().invoke(app, ["import-export", str(good), str(broken), "--out", str(root)])
    assert result.exit_code == 2
    assert str(broken) in result.output and expected in result.output
    assert not root.exists()


def test_cli_import_export(tmp_path: Path, make_dce_export: MakeExport) -> None:
    export, files = make_dce_export(n=20, seed=9)
    root = tmp_path / "data"
    result = CliRunner().invoke(
        app, ["import-export", str(export), "--out", str(root), "--media", "--download", "all", "--raw-only"]
    )
    assert result.exit_code == 0, result.output
    assert "20 messages" in result.output
    results = RawStore(Store(str(root))).attachment_results()
    assert {aid for aid, r in results.items() if r.sha256} == set(files)
