"""The message parser: kinds, prompts and parameters of every era, in API and DCE shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dce_fixtures import EXPORT_2023, EXPORT_CURRENT, real_exports
from mj_messages import (
    BOT_ID,
    JOB,
    NIJI_ID,
    USER_ID,
    api_message,
    attachment,
    grid_components,
    snowflake,
    to_dce,
)

from midshard.cleaners.parse import MalformedMessageError, parse_message
from midshard.records import Kind
from midshard.settings import Settings

BOTS = Settings().bot_ids
M = f"<@{USER_ID}>"
S = "https://s.mj.run"
WEB = (
    "[(Open on website for full quality)](<https://midjourney.com/jobs/0b7c5c3e-1d2a-4a59-9d52-3c1c0b0a1a11>)"
)
FOOTER = (
    "\n-# Create, explore, and organize on [midjourney.com](<https://midjourney.com/imagine?from_discord=1>)"
)

# content -> (kind, image_conditioned, prompt, params, image_urls)
CASES: list[tuple[str, tuple[Kind, bool, str, dict, list]]] = [
    # v5.2 grid, the reference example
    (
        f"**The wolf is coming. --s 750 --v 5.2** - {M} (relaxed)",
        (Kind.GRID, False, "The wolf is coming.", {"stylize": "750", "version": "5.2"}, []),
    ),
    # 2022 v3/v4 grid, `--w` is width before v4, metered mode tag
    (
        f"**castle on a hill --w 768 --h 512 --v 3** - {M} (metered, fast)",
        (Kind.GRID, False, "castle on a hill", {"width": "768", "height": "512", "version": "3"}, []),
    ),
    (
        f"**castle on a hill --w 500 --v 5.1** - {M} (fast, stealth)",
        (Kind.GRID, False, "castle on a hill", {"weird": "500", "version": "5.1"}, []),
    ),
    # image prompts: several, with and without `>`, weights, a proxy marker in front
    (
        f"**<{S}/xI98Y80tUrY> <{S}/abcdefghijk> a cute cat --iw 0.5** - {M} (fast)",
        (Kind.GRID, True, "a cute cat", {"iw": "0.5"}, [f"{S}/xI98Y80tUrY", f"{S}/abcdefghijk"]),
    ),
    (
        f"**<{S}/xI98Y80tUrY <{S}/abcdefghijk> a cute cat** - {M} (fast)",
        (Kind.GRID, True, "a cute cat", {}, [f"{S}/xI98Y80tUrY", f"{S}/abcdefghijk"]),
    ),
    (
        f"**https://pic1.png::4 https://pic2.png::1 a dog --iw 0.5** - {M} (fast)",
        (Kind.GRID, True, "a dog", {"iw": "0.5"}, ["https://pic1.png", "https://pic2.png"]),
    ),
    (
        f"**<<<749632982335>>> <{S}/abcdefghijk> a cute cat** - {M} (fast)",
        (Kind.GRID, True, "a cute cat", {}, [f"{S}/abcdefghijk"]),
    ),
    # references: URL conditions, a numeric style code does not
    (
        f"**a fox --sref <{S}/abcdefghijk> --sw 200 --v 6.1** - {M} (fast)",
        (
            Kind.GRID,
            True,
            "a fox",
            {"sref": f"<{S}/abcdefghijk>", "sw": "200", "version": "6.1"},
            [f"{S}/abcdefghijk"],
        ),
    ),
    (
        f"**a fox --sref 123456::2 987 --v 7.0** - {M} (turbo)",
        (Kind.GRID, False, "a fox", {"sref": "123456::2 987", "version": "7.0"}, []),
    ),
    (
        f"**a fox --sref random --p m7123 --v 7.0** - {M} (fast)",
        (Kind.GRID, False, "a fox", {"sref": "random", "personalize": "m7123", "version": "7.0"}, []),
    ),
    (
        f"**a knight --cref https://cdn.discordapp.com/a/b/c.png --cw 50** - {M} (fast)",
        (
            Kind.GRID,
            True,
            "a knight",
            {"cref": "https://cdn.discordapp.com/a/b/c.png", "cw": "50"},
            ["https://cdn.discordapp.com/a/b/c.png"],
        ),
    ),
    (
        f"**a knight --oref <{S}/abcdefghijk> --ow 100 --v 7.0** - {M} (fast)",
        (
            Kind.GRID,
            True,
            "a knight",
            {"oref": f"<{S}/abcdefghijk>", "ow": "100", "version": "7.0"},
            [f"{S}/abcdefghijk"],
        ),
    ),
    # upscales of every era
    (
        f"**The wolf is coming. --v 5.2** - Image #2 {M}",
        (Kind.UPSCALE, False, "The wolf is coming.", {"version": "5.2"}, []),
    ),
    (f"**a fox --v 4** - Upscaled by {M} (fast)", (Kind.UPSCALE, False, "a fox", {"version": "4"}, [])),
    (
        f"**a fox --v 3** - Upscaled (Beta) by {M} (relaxed)",
        (Kind.UPSCALE, False, "a fox", {"version": "3"}, []),
    ),
    (
        f"**a fox --v 5.2** - Upscaled (4x) by {M} (fast)",
        (Kind.UPSCALE, False, "a fox", {"version": "5.2"}, []),
    ),
    (
        f"**a fox --v 7.0 --raw** - Upscaled (Subtle) by {M} (fast)",
        (Kind.UPSCALE, False, "a fox", {"version": "7.0", "raw": ""}, []),
    ),
    (
        f"**a fox --v 6.0** - Upscaling (Creative) by {M} (fast)",
        (Kind.UPSCALE, False, "a fox", {"version": "6.0"}, []),
    ),
    # image-to-image edits
    (
        f"**a fox --v 5.1** - Variations by {M} (fast)",
        (Kind.VARIATION, True, "a fox", {"version": "5.1"}, []),
    ),
    (f"**a fox** - Variations (Strong) by {M} (relaxed)", (Kind.VARIATION, True, "a fox", {}, [])),
    (f"**a fox** - Variations (Region) by {M} (fast)", (Kind.VARIATION, True, "a fox", {}, [])),
    (f"**a red fox** - Remix (Subtle) by {M} (fast)", (Kind.REMIX, True, "a red fox", {}, [])),
    (f"**a red fox** - Remix by {M} (fast)", (Kind.REMIX, True, "a red fox", {}, [])),
    (f"**a fox --ar 1:1** - Zoom Out by {M} (fast)", (Kind.ZOOM, True, "a fox", {"aspect": "1:1"}, [])),
    (f"**a fox --ar 45:103** - Pan Left by {M} (fast)", (Kind.PAN, True, "a fox", {"aspect": "45:103"}, [])),
    (f"**a fox --v 3** - Remaster by {M} (fast)", (Kind.VARIATION, True, "a fox", {"version": "3"}, [])),
    # blend: only image URLs
    (
        f"**<{S}/aaaaaaaaaaa> <{S}/bbbbbbbbbbb> --v 5** - {M} (fast)",
        (Kind.BLEND, True, "", {"version": "5"}, [f"{S}/aaaaaaaaaaa", f"{S}/bbbbbbbbbbb"]),
    ),
    # 2025 animate result (normalised tail)
    (
        f"**a fox --raw --motion high --video 1 --aspect 1:1** - {M} (fast)",
        (Kind.VIDEO, True, "a fox", {"raw": "", "motion": "high", "video": "1", "aspect": "1:1"}, []),
    ),
    # the old `--video` flag on an ordinary grid is not a video
    (f"**a fox --video --v 4** - {M} (fast)", (Kind.GRID, False, "a fox", {"video": "", "version": "4"}, [])),
    # progress of every kind
    (f"**a fox --v 7.0** - {M} (Waiting to start)", (Kind.PROGRESS, False, "a fox", {"version": "7.0"}, [])),
    (f"**a fox --v 7.0** - {M} (12%) (fast)", (Kind.PROGRESS, False, "a fox", {"version": "7.0"}, [])),
    (f"**a fox** - {M} (Stopped)", (Kind.PROGRESS, False, "a fox", {}, [])),
    (f"**a fox** - {M} (paused) (relaxed)", (Kind.PROGRESS, False, "a fox", {}, [])),
    (
        f"Making variations for image #1 with prompt **a fox --v 5** - {M} (Waiting to start)",
        (Kind.PROGRESS, True, "a fox", {"version": "5"}, []),
    ),
    (
        f"Upscaling image #3 with **a fox --v 5** - {M} (Waiting to start)",
        (Kind.PROGRESS, False, "a fox", {"version": "5"}, []),
    ),
    (
        f"Creating video with prompt **a fox --motion low** - {M} (Waiting to start)",
        (Kind.PROGRESS, True, "a fox", {"motion": "low"}, []),
    ),
    # v6/v7 status links, stacked tags, the 2025 footer
    (f"**a fox --v 6.0** - {M} {WEB} (relaxed)", (Kind.GRID, False, "a fox", {"version": "6.0"}, [])),
    (
        f"**a fox --v 5.2** - {M} (Open on website for full quality) (relaxed)",
        (Kind.GRID, False, "a fox", {"version": "5.2"}, []),
    ),
    (f"**a fox --v 7.0** - {M} (fast){FOOTER}", (Kind.GRID, False, "a fox", {"version": "7.0"}, [])),
    # literal oddities of real prompts
    (
        f"**fast car (fast) - racing, --ar 9:16** - {M} (fast)",
        (Kind.GRID, False, "fast car (fast) - racing", {"aspect": "9:16"}, []),
    ),
    (
        f"** girl flips her hair --v 4** - {M} (fast)",
        (Kind.GRID, False, "girl flips her hair", {"version": "4"}, []),
    ),
    (f"**梵高，向日葵 --niji** - {M} (fast)", (Kind.GRID, False, "梵高，向日葵", {"niji": ""}, [])),
    (
        f"**a poster Aspect Ratio: --ar 16:9** - {M} (fast)",
        (Kind.GRID, False, "a poster Aspect Ratio:", {"aspect": "16:9"}, []),
    ),
    (
        f"**a city --v 5.1 raw --s 250** - {M} (fast)",
        (Kind.GRID, False, "a city", {"version": "5.1 raw", "stylize": "250"}, []),
    ),
    (
        f"**[8262694398550213] a city —ar 3:2 –V 6** - {M} (fast)",
        (Kind.GRID, False, "a city", {"aspect": "3:2", "version": "6"}, []),
    ),
    (
        f"**hot dog::1.5 food::-1 --no boy --no car , dog --pic** - {M} (fast)",
        (Kind.GRID, False, "hot dog food", {"no": "boy, car , dog", "pic": ""}, []),
    ),
    # not generations
    (
        "You have successfully rated [this job](<https://midjourney.com/jobs/x>) with 😍",
        (Kind.OTHER, False, "", {}, []),
    ),
    # the placeholder of an image-to-video job (Animate): image-conditioned like the video
    ("Animating...", (Kind.VIDEO, True, "", {}, [])),
    ("Animating…", (Kind.VIDEO, True, "", {}, [])),
    ("Animating... the cat", (Kind.OTHER, False, "", {}, [])),
]


def _ids(case: tuple) -> str:
    return case[1][0].value


@pytest.mark.parametrize("shape", ["api", "dce"])
@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_kinds_prompts_and_params(case: tuple, shape: str) -> None:
    content, (kind, conditioned, prompt, params, urls) = case
    message = api_message(1, content)
    parsed = parse_message(to_dce(message) if shape == "dce" else message, BOTS, channel_id=7)
    assert (parsed.kind, parsed.image_conditioned) == (kind, conditioned)
    assert (parsed.prompt, parsed.params, list(parsed.image_urls)) == (prompt, params, urls)
    assert parsed.id == int(message["id"]) and parsed.author_id == int(BOT_ID)
    assert parsed.timestamp == "2023-07-15T09:07:16.570Z"  # snowflake time; DCE local time converted


def test_reference_example_fields() -> None:
    message = api_message(
        0, f"**The wolf is coming. --s 750 --v 5.2** - {M} (relaxed)", components=grid_components()
    )
    parsed = parse_message(message, BOTS)
    assert parsed.channel_id == 1120568025993715764 and parsed.job_id == JOB
    assert parsed.raw_prompt == "The wolf is coming. --s 750 --v 5.2"
    (a,) = parsed.attachments
    assert (a.id, a.size, a.width, a.height, a.content_type) == (1, 8_095_579, 2048, 2048, "image/png")
    assert parsed.timestamp == "2023-07-15T09:07:15.570Z"


def test_interaction_and_embeds_decide_blend_and_describe() -> None:
    blend = api_message(
        1, f"**<{S}/aaaaaaaaaaa> <{S}/bbbbbbbbbbb>** - {M} (Waiting to start)", interaction="blend"
    )
    assert parse_message(blend, BOTS).kind is Kind.PROGRESS
    assert parse_message(blend, BOTS).image_conditioned
    embed = {"description": "1️⃣ a red fox --ar 1:1\n\n2️⃣ a fox in snow --ar 1:1"}
    describe = api_message(2, "", attachments=[], embeds=[embed], interaction="describe")
    for shape in (describe, to_dce(describe)):
        assert parse_message(shape, BOTS).kind is Kind.DESCRIBE
    no_interaction = api_message(3, "", attachments=[], embeds=[embed])
    assert parse_message(no_interaction, BOTS).kind is Kind.DESCRIBE
    shorten = api_message(
        4,
        "",
        attachments=[],
        embeds=[{"footer": {"text": "Click on a button to imagine one of the shortened prompts"}}],
    )
    assert parse_message(shorten, BOTS).kind is Kind.DESCRIBE
    error = api_message(
        5, "", attachments=[], embeds=[{"title": "Invalid parameter", "description": "--ar 0:1"}]
    )
    assert parse_message(error, BOTS).kind is Kind.OTHER


def test_previews_are_progress_and_animated_attachments_are_video() -> None:
    preview = attachment(11, filename=f"{JOB}_grid_0.webp", width=512, height=512, content_type="image/webp")
    assert parse_message(api_message(1, f"**a fox** - {M} (fast)", [preview]), BOTS).kind is Kind.PROGRESS
    step = attachment(12, filename=f"{JOB}_0_step_3.jpeg", content_type="image/jpeg")
    assert parse_message(api_message(2, f"**a fox** - {M} (fast)", [step]), BOTS).kind is Kind.PROGRESS
    animated = attachment(13, filename=f"u_a_fox_{JOB}.webp", content_type="image/webp", flags=1 << 5)
    video = parse_message(api_message(3, f"**a fox --video** - {M} (fast)", [animated], parent=1), BOTS)
    assert (video.kind, video.image_conditioned, video.parent_id) == (Kind.VIDEO, True, int(snowflake(1)))


def test_mention_forms_and_bare_content() -> None:
    for mention in (f"<@!{USER_ID}>", "@oliverdaniel", "@oliver daniel#1234"):
        parsed = parse_message(api_message(1, f"**a fox --v 4** - Image #1 {mention}"), BOTS)
        assert (parsed.kind, parsed.prompt) == (Kind.UPSCALE, "a fox")
    # clean forms without `**` (clean_content-style renderers)
    parsed = parse_message(
        api_message(1, "a fox - racing --v 4 - Variations (Strong) by @oliverdaniel (fast)"), BOTS
    )
    assert (parsed.kind, parsed.prompt, parsed.params) == (Kind.VARIATION, "a fox - racing", {"version": "4"})
    parsed = parse_message(
        api_message(1, "Upscaling image #2 with a fox --v 5 - @oliverdaniel (Waiting to start)"), BOTS
    )
    assert (parsed.kind, parsed.prompt) == (Kind.PROGRESS, "a fox")
    # a prompt span with no tail, and components as the only grid signal
    bare = api_message(1, "**a fox --v 5**", components=grid_components())
    assert parse_message(bare, BOTS).kind is Kind.GRID
    assert parse_message(api_message(1, "**a fox --v 5**"), BOTS).kind is Kind.OTHER
    # a bold phrase and a dash are not a finished job without the user's mention
    assert parse_message(api_message(1, "**Job queued** - your job starts soon"), BOTS).kind is Kind.OTHER
    # some versions put the progress before the mention
    assert parse_message(api_message(1, f"**a fox** - (25%) {M} (fast)"), BOTS).kind is Kind.PROGRESS


def test_bot_is_recognised_by_id_only() -> None:
    content = f"**a fox** - {M} (fast)"
    impostor = api_message(1, content, author_id="555")
    impostor["author"]["username"] = "Midjourney Bot"
    parsed = parse_message(impostor, BOTS)
    assert (parsed.kind, parsed.prompt, parsed.params, parsed.image_conditioned) == (
        Kind.NOT_MIDJOURNEY,
        "",
        {},
        False,
    )
    assert parse_message(api_message(1, content, author_id=NIJI_ID), BOTS).kind is Kind.GRID
    assert parse_message(api_message(1, content), [555]).kind is Kind.NOT_MIDJOURNEY
    assert parse_message(impostor, [555]).kind is Kind.GRID


def test_references_and_forwards() -> None:
    reply = api_message(2, f"**a fox** - Image #1 {M}", parent=1)
    assert parse_message(reply, BOTS).parent_id == int(snowflake(1))
    assert parse_message(to_dce(reply), BOTS).parent_id == int(snowflake(1))
    reply["message_reference"]["type"] = 1  # a forward is not a parent
    assert parse_message(reply, BOTS).parent_id is None


@pytest.mark.parametrize(
    "message",
    [
        None,
        [],
        "x",
        {},
        {"id": None},
        {"id": "abc"},
        {"id": -5},
        {"id": "0"},
        {"id": str(1 << 64)},
        {"id": True},
    ],
)
def test_unusable_ids_are_errors(message: object) -> None:
    with pytest.raises(MalformedMessageError):
        parse_message(message, BOTS)


def test_wrong_typed_fields_never_crash() -> None:
    odd = {
        "id": snowflake(1),
        "author": {"id": BOT_ID},
        "content": ["not", "text"],
        "attachments": [None, "x", {"id": "nope"}, {"id": "5", "size": "big", "width": -1, "filename": 3}],
        "components": {"a": 1},
        "embeds": "x",
        "message_reference": "x",
        "timestamp": "yesterday",
        "interaction": [],
    }
    parsed = parse_message(odd, BOTS)
    assert parsed.kind is Kind.OTHER and [a.id for a in parsed.attachments] == [5]
    assert parsed.timestamp == "2023-07-15T09:07:16.570Z"
    odd["content"] = "**\x00a fox\x00--v 5** - \x00 (fast)"
    parsed = parse_message(odd, BOTS)
    assert (parsed.prompt, parsed.params) == ("a fox", {"version": "5"})


def parse_export(path: Path) -> tuple[dict, list]:
    """An export's document and its parsed messages, checking what every export must give: the
    channel and UTC timestamps, and each declared attachment read with its name and size."""
    export = json.loads(path.read_text(encoding="utf-8-sig"))
    channel = int(export["channel"]["id"])
    parsed = [parse_message(m, BOTS, channel) for m in export["messages"]]
    assert len(parsed) == len(export["messages"]) > 0
    assert all(p.channel_id == channel and p.timestamp.endswith("Z") for p in parsed)
    declared = [a for m in export["messages"] for a in m["attachments"]]
    read = [a for p in parsed for a in p.attachments]
    assert [(a.id, a.filename, a.size) for a in read] == [
        (int(a["id"]), a["fileName"], a["fileSizeBytes"]) for a in declared
    ]
    return export, parsed


def test_a_2023_dce_export() -> None:
    export, parsed = parse_export(EXPORT_2023)
    assert [(p.kind.value, p.image_conditioned) for p in parsed] == [
        ("not_midjourney", False),  # a member joined
        ("grid", False),  # `@alice` mentions: DCE renders names, not ids
        ("upscale", False),  # `Image #2`, type Reply
        ("not_midjourney", False),  # a person's reply with a photo
        ("not_midjourney", False),  # ThreadCreated: its reference names no message
        ("variation", True),
        ("progress", False),
    ]
    ids = [int(m["id"]) for m in export["messages"]]
    assert [p.parent_id for p in parsed] == [None, None, ids[1], ids[2], None, ids[2], None]
    assert parsed[1].timestamp == "2023-06-14T09:02:00.850Z"  # a trimmed fraction: `.85`
    assert parsed[2].prompt == "a lighthouse at dusk, oil painting"


def test_a_current_dce_export() -> None:
    export, parsed = parse_export(EXPORT_CURRENT)
    assert [(p.kind.value, p.image_conditioned) for p in parsed] == [
        ("grid", False),  # v7, with the 2025 footer
        ("upscale", False),
        ("grid", True),  # an image prompt
        ("not_midjourney", False),  # a forward
        ("video", True),  # animate: `--video 1 --motion low`
        ("not_midjourney", False),
    ]
    ids = [int(m["id"]) for m in export["messages"]]
    # a forward is not a parent
    assert [p.parent_id for p in parsed] == [None, ids[0], None, None, None, ids[1]]
    assert parsed[0].timestamp == "2025-06-02T18:30:00.000Z"  # from +02:00
    assert parsed[0].params == {"aspect": "3:2", "version": "7.0", "raw": ""}


def test_real_dce_exports_are_not_midjourney() -> None:
    """The optional extra check on DCE's own output (tests/dce_fixtures.py says where it is looked for)."""
    for path in real_exports():
        _, parsed = parse_export(path)
        assert {p.kind for p in parsed} == {Kind.NOT_MIDJOURNEY}
        assert [p for p in parsed if p.parent_id]  # `reference.messageId` is read
