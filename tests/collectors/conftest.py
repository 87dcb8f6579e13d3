"""Shared fixtures of the collector tests."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from dce_files import MakeExport, dce_document, dce_message, write_json


@pytest.fixture
def make_dce_export(tmp_path: Path) -> MakeExport:
    """Write a DCE export made with `--media`: (export path, attachment id -> the file's bytes).

    The media folder sits next to the export as DCE writes it; references use Windows separators
    and names with spaces and non-ASCII characters. Odd messages are Midjourney upscales (they pass
    the message-level filters), even ones grids (skipped by default).
    """

    def make(channel_id: int = 1200000000000000001, n: int = 130, seed: int = 0) -> tuple[Path, dict]:
        rng = random.Random(seed)
        folder = tmp_path / f"export-{channel_id}-{seed}"
        name = f"Art guild - Generations - mj [{channel_id}].json"
        media_dir = folder / f"{name}_Files"
        media_dir.mkdir(parents=True)
        files: dict[int, bytes] = {}
        messages = []
        base = 1230000000000000000 + seed * 10**12
        for index in range(n):
            message_id = base + index * 4096
            attachments = []
            for k in range(index % 3):  # 0, 1 or 2 attachments
                data = rng.randbytes(rng.randint(1, 3000))
                attachment_id = message_id - 1 - k
                file_name = f"lighthouse é {index}-{k}.png"
                digest = hashlib.sha256(file_name.encode()).hexdigest()[:16]
                stored = f"lighthouse é {index}-{k}-{digest}.png"
                (media_dir / stored).write_bytes(data)
                files[attachment_id] = data
                attachments.append(
                    {
                        "id": str(attachment_id),
                        "url": f"{name}_Files\\{stored}",
                        "fileName": file_name,
                        "fileSizeBytes": len(data),
                    }
                )
            action = "Image #1 <@123>" if index % 2 else "<@123> (fast)"  # upscale | grid
            content = f"**a lighthouse at dusk {index} --ar 1:1** - {action}"
            messages.append(dce_message(message_id, attachments, content))
        rng.shuffle(messages)  # order in the file does not matter
        path = write_json(folder / name, dce_document(channel_id, messages))
        return path, files

    return make


@pytest.fixture(scope="session")
def emulator_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated files shared by every emulator of the session (the same seed serves the same bytes)."""
    return tmp_path_factory.mktemp("emulator-cache")
