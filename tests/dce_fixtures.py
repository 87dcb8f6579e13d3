"""DiscordChatExporter exports the tests read: small ones of our own under `tests/fixtures/dce/`
(described in its README), and, as an optional extra check, two real exports kept beside the
repository (`fixtures/dce/` of a `shared` folder next to the checkout), which are not ours to ship."""

from __future__ import annotations

from pathlib import Path

import pytest

OWN = Path(__file__).resolve().parent / "fixtures" / "dce"
# The 2023 shape, exported with `--media`: the media folder beside it (one file is missing).
EXPORT_2023 = OWN / "2023-media" / "Art guild - Generations - mj [1071000000000000001].json"
# The current shape (roles, inlineEmojis, forwards, exportedAt), exported without `--media`: CDN links.
EXPORT_CURRENT = OWN / "current-links" / "Fox studio - Renders - mj-v7 [1300000000000000010].json"
# Valid JSON whose attachments point outside the export, at other schemes and hosts, or lie.
EXPORT_HOSTILE = OWN / "hostile" / "export" / "Hostile guild - mj [1300000000000000020].json"
OUTSIDE = OWN / "hostile" / "outside.png"  # beside the hostile export's folder: never to be read
# An export holding a message id in Arabic-Indic digits: refused as a whole.
EXPORT_REFUSED = OWN / "refused-id.json"

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dce"
REAL_NAMES = (
    "dcef_example_general_1012224565567721552.json",
    "dcef_example_thread_1060927310439657577.json",
)


def real_exports() -> list[Path]:
    """The two real exports (DiscordChatExporter-frontend's example guild, 2023), or a skip saying
    where they were looked for."""
    found = [REAL / name for name in REAL_NAMES if (REAL / name).is_file()]
    if len(found) < len(REAL_NAMES):
        pytest.skip(f"optional check: the real DiscordChatExporter exports {REAL_NAMES} are not in {REAL}")
    return found
