"""Raw store commit rules the collectors rely on: batch journal, pending batches, temp sweep."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from midshard.raw_store import AttachmentResult, RawStore, dumps_line
from midshard.store import Store

CHANNEL = 42


def message(message_id: int, *attachment_ids: int) -> dict:
    attachments = [{"id": str(a), "url": "u", "size": 1} for a in attachment_ids]
    return {"id": str(message_id), "attachments": attachments}


def test_journal_survives_a_torn_last_line_and_is_replaced_by_the_results(tmp_path: Path) -> None:
    raw = RawStore(Store(str(tmp_path)))
    batch = raw.write_message_batch(CHANNEL, [message(11, 1), message(12, 2, 3)])
    first = AttachmentResult(1, 11, sha256=raw.put_media(b"first"))
    with raw.open_journal(CHANNEL, batch) as journal:
        journal.append(first)
    path = tmp_path / raw.journal_path(CHANNEL, batch)
    with path.open("ab") as handle:  # a kill in the middle of an append
        handle.write(b'{"attachment_id":"2","mess')
    assert raw.open_journal(CHANNEL, batch).read() == {1: first}

    second = AttachmentResult(3, 12, error="gone")
    with raw.open_journal(CHANNEL, batch) as journal:
        journal.append(second)  # not glued onto the torn line
        assert journal.read() == {1: first, 3: second}
    assert raw.pending_media_batches(CHANNEL) == [batch]

    third = AttachmentResult(2, 12, sha256=raw.put_media(b"third"))
    raw.finish_attachment_results(CHANNEL, batch, [third, second, first])
    assert not path.exists()
    assert raw.pending_media_batches(CHANNEL) == []
    assert raw.attachment_results(CHANNEL) == {1: first, 2: third, 3: second}
    lines = (tmp_path / raw.attachments_path(CHANNEL, batch)).read_text().splitlines()
    assert [line.split('"')[3] for line in lines] == ["1", "2", "3"]  # sorted by attachment id


def test_a_journal_line_never_stands_for_missing_bytes(tmp_path: Path) -> None:
    """Lines are not fsynced; after a machine crash a line may survive its media file's rename,
    so reading trusts a stored result only if its file is there (else it is fetched again)."""
    raw = RawStore(Store(str(tmp_path)))
    batch = raw.write_message_batch(CHANNEL, [message(11, 1, 2)])
    kept = AttachmentResult(1, 11, sha256=raw.put_media(b"kept"))
    lost = AttachmentResult(2, 11, sha256="c" * 64)
    with raw.open_journal(CHANNEL, batch) as journal:
        journal.append(kept)
        journal.append(lost)
    assert raw.open_journal(CHANNEL, batch).read() == {1: kept}


def test_media_writer_streams_renames_and_cleans_up(tmp_path: Path) -> None:
    raw = RawStore(Store(str(tmp_path)))
    chunks = [b"a" * 70_000, b"b" * 5, b""]
    with raw.media_writer("17") as writer:
        writer.write(chunks)
        assert writer.path.parent == tmp_path / "raw/media" and writer.path.name.startswith("17.")
        sha256 = writer.commit()
    assert raw.read_media(sha256) == b"".join(chunks)
    assert sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    with raw.media_writer("18") as again:  # the same bytes once more: nothing written twice
        again.write([b"".join(chunks)])
        assert again.commit() == sha256
    with raw.media_writer("19") as abandoned:
        abandoned.write([b"half a file"])  # an attempt that failed: no commit
    assert sorted(p.name for p in (tmp_path / "raw/media").rglob("*") if p.is_file()) == [sha256]

    # what a killed writer leaves is swept by the next fetch of the same attachments only
    left = [tmp_path / "raw/media" / name for name in ("20.1a2b3c4d.tmp", "21.5e6f7a8b.tmp")]
    for path in left:
        path.write_bytes(b"partial")
    raw.sweep_media_temp(["20", "22"])
    assert [path.exists() for path in left] == [False, True]


def test_a_killed_cursor_write_is_swept_when_history_starts(tmp_path: Path) -> None:
    raw = RawStore(Store(str(tmp_path)))
    raw.set_cursor(CHANNEL, 9)
    left = tmp_path / "state" / "cursors.json.0badf00d.tmp"  # SIGKILL inside another channel's write
    left.write_text('{"42": ')
    raw.sweep_temp(7)  # any channel's history writer sweeps it, under the cursor lock
    assert not left.exists()
    assert raw.cursors() == {CHANNEL: 9}


def test_pending_batches_and_what_a_killed_run_leaves_behind(tmp_path: Path) -> None:
    raw = RawStore(Store(str(tmp_path)))
    old = raw.write_message_batch(CHANNEL, [message(5)])
    new = raw.write_message_batch(CHANNEL, [message(9), message(7)])
    raw.write_attachment_results(CHANNEL, old, [])
    assert raw.pending_media_batches(CHANNEL) == [new]
    assert raw.cursor(CHANNEL) == 9  # from the batch names, without a cursor file

    # a batch file killed before its rename, a results file killed before its rename
    unrenamed = tmp_path / "raw/messages/42/00000000000000000010-00000000000000000011.jsonl.gz.1a2b3c4d.tmp"
    unrenamed.write_bytes(b"partial")
    results_tmp = tmp_path / (raw.attachments_path(CHANNEL, new) + ".5e6f7a8b.tmp")
    results_tmp.write_bytes(b"partial")
    # a journal killed after its batch's results file was written
    with raw.open_journal(CHANNEL, old) as journal:
        journal.append(AttachmentResult(1, 5, error="gone"))
    assert raw.message_batches(CHANNEL) == [old, new]  # readers never see temporary files

    raw.sweep_temp(CHANNEL)
    raw.sweep_batch_temp(CHANNEL, new)
    raw.drop_stale_journals(CHANNEL)
    assert not unrenamed.exists() and not results_tmp.exists()
    assert not (tmp_path / raw.journal_path(CHANNEL, old)).exists()
    assert raw.message_batches(CHANNEL) == [old, new]
    assert raw.pending_media_batches(CHANNEL) == [new]


def test_batches_keep_every_message_as_received(tmp_path: Path) -> None:
    """Keys in received order, non-ASCII as is, numbers orjson cannot write (beyond 64 bits) by
    the standard encoder; any gzip reader reads the batch."""
    raw = RawStore(Store(str(tmp_path)))
    messages = [
        {"id": "12", "content": "猫 ✨ \u2028 \x00", "z": 1, "a": [0.5, None, True]},
        {"id": "11", "huge": 2**70, "nested": {"b": 1, "a": 2}},
    ]
    batch = raw.write_message_batch(CHANNEL, messages)
    assert raw.read_batch(batch) == [messages[1], messages[0]]  # ascending id
    lines = gzip.decompress((tmp_path / batch).read_bytes()).decode().split("\n")
    assert lines == [dumps_line(messages[1]), dumps_line(messages[0]), ""]
