"""History-scrape benchmark: how close `collect_histories` gets to the rate Discord allows.

    python bench/scrape.py            # 20 channels x 2 450 messages (25 history requests each)
    python bench/scrape.py --quick    # 20 channels x 950 messages (10 requests each)

One `midshard emulator --prerender` process per mode, with Discord's default limits (per-channel
bucket of `history_limit` requests per `history_window` s on GET messages, `global_limit`
requests/s per token). `--prerender` encodes every message before the emulator announces itself,
so a page costs the server only its assembly and link signing (~2 ms), as Discord's cost is not on
our cores. `midshard.collectors.collect.collect_histories` (history only, no media) pages every
channel concurrently on one discord.py client into a fresh raw store.

The baseline is the limit itself: the least time the emulator's limiter lets these requests take,
first to last. The buckets are fixed windows that open with a channel's first request, so r
requests of one channel need at least (ceil(r / limit) - 1) x window seconds before its last
window opens, and the last windows of all channels hold more requests than the global limit lets
through in one second: 20 x 5 = 100 need one more second (all channels' requests together need at
least ceil(R / global) - 1 s). fraction_of_allowed = that least time / the span the emulator
measured from the first history page it served to the last: the achieved request rate against the
allowed one. fraction_of_allowed_whole_call uses the wall time of the whole call
instead; it also counts login and discord.py's habit of sleeping until the bucket resets inside
the request that empties it, which delays the return of each channel's last page by up to one
window (latency of the call, not request rate). Targets: fraction >= 0.9, no 429 with honest
headers, no ban in any mode, and midshard's CPU per 100-message page (discord.py's JSON parsing,
our JSON lines, gzip and the atomic write included) <= 8 ms. The lying-headers mode (2026
behaviour: message routes advertise 1000/999 remaining) reports its 429s. Both processes' CPU per
page is reported (process CPU time, robust to other jobs on the machine; wall times are not).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_TOKEN, emit, emulator

from midshard.collectors.collect import CollectStats, collect_histories
from midshard.collectors.history import PAGE_SIZE
from midshard.settings import Settings

CHANNELS = 20
MESSAGES_ROUTE = "GET /channels/{channel_id}/messages"
LIMITS = {"history_limit": 5, "history_window": 5.0, "global_limit": 50}  # the emulator's defaults


def allowed_rate(channels: int) -> float:
    """Steady-state history requests/s the limits allow: every channel's bucket, capped globally."""
    per_channel = LIMITS["history_limit"] / LIMITS["history_window"]
    return min(channels * per_channel, float(LIMITS["global_limit"]))


def least_span(requests_per_channel: int, channels: int) -> float:
    """The least seconds the fixed windows allow for these requests (first to last).

    A channel's last window opens (windows - 1) x window s after its first request; the last
    windows of all channels then hold channels x (requests left for them) requests, which the
    global limit (one fixed window per second) spreads over at least ceil(n / global) - 1 more
    seconds. Over the whole run, the global limit alone needs ceil(all / global) - 1 s."""
    limit, window, per_second = LIMITS["history_limit"], LIMITS["history_window"], LIMITS["global_limit"]
    windows = math.ceil(requests_per_channel / limit)
    last_window = channels * (requests_per_channel - (windows - 1) * limit)
    per_channel = (windows - 1) * window + math.ceil(last_window / per_second) - 1
    global_floor = math.ceil(requests_per_channel * channels / per_second) - 1.0
    return max(per_channel, global_floor)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_mode(messages: int, lying: bool) -> dict[str, Any]:
    options = {"channels": CHANNELS, "messages": messages, "lying_headers": lying, "prerender": True}
    with emulator(**options, **LIMITS) as emu:
        with tempfile.TemporaryDirectory(prefix="midshard-bench-scrape-") as root:
            settings = Settings(root=root, api_base=emu.api_base, channels=emu.channel_ids)
            stats = CollectStats()
            server = psutil.Process(emu.process.pid)
            server_cpu, cpu, started = _cpu(server), time.process_time(), time.perf_counter()
            collect_histories(settings, stats)
            wall = time.perf_counter() - started
            cpu, server_cpu = time.process_time() - cpu, _cpu(server) - server_cpu
        served = emu.stats()
    limited = served["rate_limited"]
    refused = sum(limited.values())
    history_ok = served["routes"].get(MESSAGES_ROUTE, 0) - refused
    per_channel = messages // PAGE_SIZE + 1  # full pages, then the short (or empty) one that ends it
    least = least_span(per_channel, CHANNELS)
    first, last = served["history_pages_between"]
    return {
        "wall_s": round(wall, 2),
        "span_s": round(last - first, 2),
        "messages": stats.messages,
        "history_requests": history_ok,
        "expected_history_requests": per_channel * CHANNELS,
        "requests_per_s": round(history_ok / (last - first), 2),
        "least_span_s": least,
        "fraction_of_allowed": round(least / (last - first), 3),
        "fraction_of_allowed_whole_call": round(least / wall, 3),
        "cpu_ms_per_page": {
            "midshard": round(1000 * cpu / history_ok, 2),
            "emulator": round(1000 * server_cpu / history_ok, 2),
        },
        "rate_limited_429": limited,
        "bans": served["bans"],
        "banned_responses": served["banned_responses"],
        "invalid_requests_in_window": served["invalid_requests"],
        "channel_errors": len(stats.channel_errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="10 requests per channel instead of 25 (< 1 min)"
    )
    args = parser.parse_args()
    os.environ["DISCORD_BOT_TOKEN"] = BENCH_TOKEN
    logging.getLogger("discord").setLevel(logging.ERROR)  # its 429 notices are expected in lying mode

    messages = 950 if args.quick else 2450
    honest = run_mode(messages, lying=False)
    lying = run_mode(messages, lying=True)
    fraction = honest["fraction_of_allowed"]
    emit(
        {
            "benchmark": "scrape",
            "quick": args.quick,
            "setup": {
                "channels": CHANNELS,
                "messages_per_channel": messages,
                "page_size": PAGE_SIZE,
                **LIMITS,
            },
            "allowed_requests_per_s": allowed_rate(CHANNELS),
            "honest_headers": honest,
            "lying_headers": lying,
            "ratio": fraction,
            "targets": {
                "fraction_of_allowed >= 0.9": fraction >= 0.9,
                "honest 429s == 0": sum(honest["rate_limited_429"].values()) == 0,
                "bans == 0 (every mode)": honest["bans"] == 0 and lying["bans"] == 0,
                "midshard cpu_ms_per_page <= 8": honest["cpu_ms_per_page"]["midshard"] <= 8,
            },
        }
    )


if __name__ == "__main__":
    main()
