"""Raw store commit rules the collectors rely on: batch journal, pending batches, temp sweep."""

from __future__ import annotations

from pathlib import Path

from midshard.raw_store import AttachmentResult, RawStore
from midshard.store import Store

CHANNEL = 42


def message(message_id: int, *attachment_ids: int) -> dict:
    attachments = [{"id": str(a), "url": "u", "size": 1} for a in attachment_ids]
    return {"id": str(message_id), "attachments": attachments}


def test_journal_survives_a_torn_last_line_and_is_replaced_by_the_results(tmp_path: Path) -> None:
    raw = RawStore(Store(str(tmp_path)))
    batch = raw.write_message_batch(CHANNEL, [message(11, 1), message(12, 2, 3)])
    first = AttachmentResult(1, 11, sha256="a" * 64)
    raw.append_journal(CHANNEL, batch, first)
    journal = tmp_path / raw.journal_path(CHANNEL, batch)
    with journal.open("ab") as handle:  # a kill in the middle of an append
        handle.write(b'{"attachment_id":"2","mess')
    assert raw.read_journal(CHANNEL, batch) == {1: first}

    second = AttachmentResult(3, 12, error="gone")
    raw.append_journal(CHANNEL, batch, second)  # not glued onto the torn line
    assert raw.read_journal(CHANNEL, batch) == {1: first, 3: second}
    assert raw.pending_media_batches(CHANNEL) == [batch]

    third = AttachmentResult(2, 12, sha256="b" * 64)
    raw.finish_attachment_results(CHANNEL, batch, [third, second, first])
    assert not journal.exists()
    assert raw.pending_media_batches(CHANNEL) == []
    assert raw.attachment_results(CHANNEL) == {1: first, 2: third, 3: second}
    lines = (tmp_path / raw.attachments_path(CHANNEL, batch)).read_text().splitlines()
    assert [line.split('"')[3] for line in lines] == ["1", "2", "3"]  # sorted by attachment id


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
    raw.append_journal(CHANNEL, old, AttachmentResult(1, 5, error="gone"))
    assert raw.message_batches(CHANNEL) == [old, new]  # readers never see temporary files

    raw.sweep_temp(CHANNEL)
    raw.sweep_batch_temp(CHANNEL, new)
    raw.drop_stale_journals(CHANNEL)
    assert not unrenamed.exists() and not results_tmp.exists()
    assert not (tmp_path / raw.journal_path(CHANNEL, old)).exists()
    assert raw.message_batches(CHANNEL) == [old, new]
    assert raw.pending_media_batches(CHANNEL) == [new]
