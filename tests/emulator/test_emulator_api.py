"""The REST API as a raw client sees it: paging semantics at the edges, errors, headers, payloads."""

from __future__ import annotations

import json

from emulator_client import AUTH, fetch, fetch_all

FAST = {"history_limit": 1000, "history_window": 1.0, "global_limit": 1000}


def ids_of(reply) -> list[int]:
    return [int(message["id"]) for message in reply.json()]


def test_paging_semantics_at_the_edges(emulator) -> None:
    """Newest first in every case; exactly 200 messages cost one extra, empty page."""
    with emulator(seed=2, channels=1, messages=200, **FAST) as emu:
        served = [int(line["id"]) for line in emu.truth()]
        url = f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages"
        first = fetch("GET", url, params={"after": "0", "limit": "100"})
        second = fetch("GET", url, params={"after": str(ids_of(first)[0]), "limit": "100"})
        third = fetch("GET", url, params={"after": str(ids_of(second)[0]), "limit": "100"})
        default = fetch("GET", url)
        before = fetch("GET", url, params={"before": str(served[120]), "limit": "7"})
        before_first = fetch("GET", url, params={"before": str(served[0])})
        after_last = fetch("GET", url, params={"after": str(served[-1])})
        around_odd = fetch("GET", url, params={"around": str(served[50]), "limit": "5"})
        around_even = fetch("GET", url, params={"around": str(served[50]), "limit": "4"})
        around_edge = fetch("GET", url, params={"around": str(served[0]), "limit": "5"})
        between = fetch("GET", url, params={"before": str(served[10] + 1)})

    assert ids_of(first) == served[99::-1]  # the 100 oldest, newest first
    assert ids_of(second) == served[199:99:-1]
    assert third.status == 200 and third.json() == []
    assert ids_of(default) == served[:149:-1]  # limit defaults to 50
    assert ids_of(before) == served[119:112:-1]
    assert before_first.json() == [] and after_last.json() == []
    assert ids_of(around_odd) == served[52:47:-1]
    assert ids_of(around_even) == served[52:47:-1]  # an even limit returns limit + 1
    assert ids_of(around_edge) == served[2::-1]
    assert ids_of(between) == served[10::-1]  # a cursor between ids works


def test_limit_out_of_range_is_a_form_error(emulator) -> None:
    with emulator(seed=1, channels=1, messages=10, **FAST) as emu:
        url = f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages"
        replies = fetch_all([("GET", url, {"params": {"limit": value}}) for value in ("0", "101", "x")])
        bad_cursor = fetch("GET", url, params={"before": "abc"})
    codes = [reply.json()["errors"]["limit"]["_errors"][0]["code"] for reply in replies]
    assert [reply.status for reply in replies] == [400, 400, 400]
    assert codes == ["NUMBER_TYPE_MIN", "NUMBER_TYPE_MAX", "NUMBER_TYPE_COERCE"]
    assert replies[1].json() == {
        "code": 50035,
        "errors": {
            "limit": {
                "_errors": [
                    {"code": "NUMBER_TYPE_MAX", "message": "int value should be less than or equal to 100."}
                ]
            }
        },
        "message": "Invalid Form Body",
    }
    assert bad_cursor.status == 400 and bad_cursor.json()["code"] == 50035


def test_errors_headers_and_content_type(emulator) -> None:
    with emulator(seed=1, channels=1, messages=10, token="secret", **FAST) as emu:
        channel = emu.channel_ids[0]
        api = emu.api_base
        no_token, wrong, unknown_channel, unknown_message, unknown_route, ok = fetch_all(
            [
                ("GET", f"{api}/users/@me", {}),
                ("GET", f"{api}/users/@me", {"headers": {"Authorization": "Bot nope"}}),
                ("GET", f"{api}/channels/123/messages", {"headers": AUTH}),
                ("GET", f"{api}/channels/{channel}/messages/456", {"headers": AUTH}),
                ("GET", f"{api}/nothing/here", {"headers": AUTH}),
                ("GET", f"{api}/channels/{channel}", {"headers": AUTH}),
            ]
        )
    for reply in (no_token, wrong):
        assert reply.status == 401 and reply.json() == {"message": "401: Unauthorized", "code": 0}
    assert unknown_channel.status == 404 and unknown_channel.json() == {
        "message": "Unknown Channel",
        "code": 10003,
    }
    assert unknown_message.status == 404 and unknown_message.json()["code"] == 10008
    assert unknown_route.status == 404
    for reply in (no_token, wrong, unknown_channel, unknown_message, unknown_route, ok):
        assert reply.headers["Content-Type"] == "application/json"  # exactly: no charset
        assert reply.headers["Via"] == "1.1 google"
    assert ok.json()["type"] == 0 and ok.json()["guild_id"] == str(emu.guild_id)


def test_payloads_carry_what_discordpy_and_real_payloads_have(emulator) -> None:
    with emulator(seed=8, channels=2, messages=120, **FAST) as emu:
        api = emu.api_base
        chosen = emu.truth()[130]["id"]
        me, app, app2, guild_channels, page, single = fetch_all(
            [
                ("GET", f"{api}/users/@me", {}),
                ("GET", f"{api}/oauth2/applications/@me", {}),
                ("GET", f"{api}/applications/@me", {}),
                ("GET", f"{api}/guilds/{emu.guild_id}/channels", {}),
                ("GET", f"{api}/channels/{emu.channel_ids[1]}/messages", {"params": {"limit": "100"}}),
                ("GET", f"{api}/channels/{emu.channel_ids[1]}/messages/{chosen}", {}),
            ]
        )
    assert {"id", "username", "discriminator", "avatar"} <= me.json().keys() and me.json()["bot"] is True
    needed = {
        "id",
        "name",
        "description",
        "icon",
        "bot_public",
        "bot_require_code_grant",
        "owner",
        "verify_key",
    }
    assert needed <= app.json().keys() and app.json() == app2.json()
    assert app.json()["flags"] & (1 << 19)
    assert [c["id"] for c in guild_channels.json() if c["type"] == 0] == [str(c) for c in emu.channel_ids]
    messages = page.json()
    order = ["type", "content", "mentions", "mention_roles", "attachments", "embeds", "timestamp"]
    order += ["edited_timestamp", "flags", "components", "id", "channel_id", "author", "pinned"]
    for message in messages:
        assert list(message)[: len(order)] == order
        for attachment in message["attachments"]:
            assert {
                "id",
                "filename",
                "size",
                "url",
                "proxy_url",
                "content_type",
                "content_scan_version",
            } <= set(attachment)
            assert int(attachment["id"]) < int(message["id"])  # uploaded just before the message
            assert attachment["url"].split("?")[1] == attachment["proxy_url"].split("?")[1]
        if message["type"] == 19:
            assert message["referenced_message"]["id"] == message["message_reference"]["message_id"]
    assert single.json()["id"] == chosen
    grids = [
        m for m in messages if m["components"] and m["components"][0]["components"][0].get("label") == "U1"
    ]
    assert grids
    for grid in grids:  # the job uuid in the buttons is the file name's suffix
        job = grid["components"][0]["components"][0]["custom_id"].rsplit("::", 1)[1]
        assert grid["attachments"][0]["filename"].endswith(f"_{job}.png")


def test_threads_are_listed_and_served(emulator) -> None:
    with emulator(seed=2, channels=1, messages=20, threads=2, thread_messages=15, **FAST) as emu:
        api = emu.api_base
        active, archived, thread, messages, guild_channels = fetch_all(
            [
                ("GET", f"{api}/guilds/{emu.guild_id}/threads/active", {}),
                (
                    "GET",
                    f"{api}/channels/{emu.channel_ids[0]}/threads/archived/public",
                    {"params": {"limit": "2"}},
                ),
                ("GET", f"{api}/channels/{emu.thread_ids[0]}", {}),
                ("GET", f"{api}/channels/{emu.thread_ids[1]}/messages", {}),
                ("GET", f"{api}/guilds/{emu.guild_id}/channels", {}),
            ]
        )
        truth_ids = {line["id"] for line in emu.truth() if line["channel_id"] == str(emu.thread_ids[1])}
    assert [t["id"] for t in active.json()["threads"]] == [str(emu.thread_ids[0])]
    assert [t["id"] for t in archived.json()["threads"]] == [str(emu.thread_ids[1])]
    assert archived.json()["has_more"] is False
    body = thread.json()
    assert body["type"] == 11 and body["parent_id"] == str(emu.channel_ids[0]) and body["message_count"] == 15
    assert {"archived", "auto_archive_duration", "archive_timestamp"} <= body["thread_metadata"].keys()
    assert {m["id"] for m in messages.json()} == truth_ids
    assert all(c["type"] != 11 for c in guild_channels.json())  # threads are not guild channels


def test_grow_appends_newer_messages(emulator) -> None:
    with emulator(seed=9, channels=2, messages=30, **FAST) as emu:
        before = emu.truth()
        emu.grow(5)
        grown = fetch("POST", f"{emu.base_url}/_emulator/grow", params={"n": "3"})
        after = emu.truth()
        page = fetch("GET", f"{emu.api_base}/channels/{emu.channel_ids[0]}/messages", params={"limit": "8"})
    assert grown.json()["messages"] == {str(c): 38 for c in emu.channel_ids}
    assert len(after) == len(before) + 16
    old = {line["id"]: line for line in before}
    assert all(old[line["id"]] == line for line in after if line["id"] in old)  # nothing earlier changes
    newest_old = max(int(line["id"]) for line in before if line["channel_id"] == str(emu.channel_ids[0]))
    assert all(int(message_id) > newest_old for message_id in [m["id"] for m in page.json()])


def test_prerendered_pages_are_the_messages_as_rendered(emulator) -> None:
    """`prerender` encodes every message once before serving; a page is still exactly the JSON
    of its messages (as the standard encoder writes it), with links signed for the request, and
    the stats say when the first and the last history page were served."""
    epoch = 1.7e9
    with emulator(seed=4, channels=2, messages=230, prerender=True, signing_epoch=epoch, **FAST) as emu:
        url = f"{emu.api_base}/channels/{emu.channel_ids[1]}/messages"
        replies = fetch_all([("GET", url, {"params": {"after": "0", "limit": "100"}})] * 2)
        served = emu.stats()["history_pages_between"]
        state = emu.state
        assert state.renderer is not None
        newest_first = [state.traffic.message(state.world.channels[1], i) for i in range(99, -1, -1)]
        payload = [state.renderer.message(message, epoch) for message in newest_first]
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert [reply.body for reply in replies] == [expected, expected]
    assert len(served) == 2 and served[0] <= served[1]
