"""The flows' processes cap glibc's malloc arenas (midshard/allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from midshard.allocator import limit_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt arenas are glibc's")
def test_the_arena_cap_is_accepted_by_glibc() -> None:
    assert limit_arenas() is True


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt arenas are glibc's")
def test_a_process_importing_the_flows_keeps_to_two_arenas() -> None:
    """malloc_stats() lists one block per arena: 16 threads allocating at once stay within two."""
    probe = """
import ctypes, threading
import midshard.flows.pipeline  # caps the arenas as it is imported
def work():
    for _ in range(2000):
        bytearray(200_000)
threads = [threading.Thread(target=work) for _ in range(16)]
[t.start() for t in threads]
[t.join() for t in threads]
ctypes.CDLL(None).malloc_stats()
"""
    stats = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stderr
    assert 1 <= stats.count("Arena ") <= 2, stats
