"""rooms.server.memory: the figures /workers reports, and trimming glibc's heap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rooms.server import memory

pytestmark = pytest.mark.skipif(memory.heap_kb() is None, reason="glibc only")


def test_stats_report_resident_size_and_the_heap() -> None:
    """The resident size is the kernel's (VmRSS); the heap figures are glibc's."""
    stats = memory.stats()
    status = Path("/proc/self/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found
    vm_rss = int(found.group(1))
    assert stats["rss_kb"] and abs(stats["rss_kb"] - vm_rss) < vm_rss // 10, (stats, vm_rss)
    assert stats["c_heap_in_use_kb"] and stats["c_heap_in_use_kb"] > 0
    assert stats["c_heap_free_kb"] is not None and stats["c_heap_free_kb"] >= 0


def test_trim_gives_free_pages_inside_the_heap_back() -> None:
    """Freed blocks below a live one stay resident (free() only shrinks the heap's top)
    until trimmed."""
    # What earlier tests of this process freed is given back first: blocks that reuse it
    # fault its pages in again, as fresh ones do.
    memory.trim()
    before = memory.rss_kb() or 0
    # 62,500 KB in glibc's heap (not mmap), written so resident; the last one allocated
    # stays alive, at the heap's top, so the top cannot shrink below it (a small block
    # allocated after them could land in a hole earlier tests left, and pin nothing)
    blocks = [b"\x01" * (32 * 1024) for _ in range(2000)]
    pin = blocks.pop()
    del blocks
    held = (memory.rss_kb() or 0) - before
    free_after = (memory.heap_kb() or (0, 0))[1]
    memory.trim()
    kept = (memory.rss_kb() or 0) - before
    assert free_after > 60_000, free_after  # heap_kb counts the freed blocks as free
    assert held > 40_000, held
    assert kept < held - 40_000, (held, kept)
    del pin  # alive until here
