"""This worker's memory: resident size, glibc's heap, and handing its free pages back.

A worker that churns connections grows by free space glibc keeps inside its heap (the
Python heap stays flat: bench/README.md, "Where the soak's memory goes"). malloc_trim(0)
returns the whole free pages of that space to the kernel. Off glibc (musl, macOS) the heap
figures are None and trimming does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc, or older than 2.33
        return None
    mallinfo2.restype = _MallInfo2
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return libc


_libc = _glibc()
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_kb() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE // 1024
    except OSError:
        return None


def heap_kb() -> tuple[int, int] | None:
    """(in use, free but held) in glibc's heap, KB; None off glibc."""
    if _libc is None:
        return None
    info = _libc.mallinfo2()
    return info.uordblks // 1024, info.fordblks // 1024


def trim() -> None:
    """Give glibc's free heap pages back to the kernel."""
    if _libc is not None:
        _libc.malloc_trim(0)


def stats() -> dict[str, int | None]:
    heap = heap_kb()
    return {
        "rss_kb": rss_kb(),
        "c_heap_in_use_kb": heap[0] if heap else None,
        "c_heap_free_kb": heap[1] if heap else None,
    }
