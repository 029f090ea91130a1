"""The codec's checks cost CPU time linear in the frame, whatever the frame holds.

Each example is one adversarial frame of 30,000 characters up to SOCKETIO_MAX_PAYLOAD
(1,000,000): blocks or cycles of the pieces a backtracking pattern trips over (escaped
quotes, lone backslashes, unterminated strings, commas and brackets past the element
count that makes the codec look inside strings). The bound is absolute, per frame: the
CPU time of the process (`time.process_time`) for one whole `decode`, at most
`CPU_PER_FRAME_S`, generous next to what a linear decode of 1 MB costs (a valid 1 MB
string of commas, the dearest legal frame measured, takes ~0.13 s). A quadratic check
takes minutes on such a frame (42 KB of `\\"` pairs and commas took 10 s); a CPU timer
(SIGPROF) stops it at `CPU_STOP_S`, so the test fails in seconds instead of hanging.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rooms.server import http_head
from rooms.socketio import codec

MAX_PAYLOAD = 1_000_000  # SOCKETIO_MAX_PAYLOAD's default
CPU_PER_FRAME_S = 0.6
CPU_STOP_S = 3.0

HEADS = ["", "4", "0", "40", "42", "431", "42/admin,", '42["x",', '40{"id_user":"', '42["x","']
PIECES = ['\\"', '"', "\\", "\\\\", ",", "[", "{", "]", "}", ":", "1", "a", " ", "\\u", "\\ud800",
          "\ud800", "\n", '"\\', '\\""', '",', '["', '{"a":"', "1e999", "-"]  # fmt: skip

# The exploit of issue 29: an unterminated string of escaped quotes, then commas.
EXPLOIT = '40{"id_user":"' + '\\"' * 12_000 + "," * 10_001


class CpuSpent(Exception):
    pass


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise CpuSpent once this process has used `seconds` of CPU (ITIMER_PROF); Python's
    regular expression engine checks for signals as it goes, so it is interrupted too."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise CpuSpent(f"over {seconds} s of CPU")

    previous = signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def decode_cpu(frame: str) -> float:
    """Process CPU seconds one `codec.decode` of `frame` costs (refusals included)."""
    started = time.process_time()
    with cpu_limit(CPU_STOP_S), suppress(codec.ProtocolError):
        codec.decode(frame, max_payload=MAX_PAYLOAD)
    return time.process_time() - started


@st.composite
def adversarial_frames(draw: st.DrawFn) -> str:
    """A head, then weighted pieces filling the frame to its size: as blocks (each piece
    repeated, one after the other) or as a cycle (the pieces in turn, repeated)."""
    head = draw(st.sampled_from(HEADS))
    size = draw(st.sampled_from([30_000, 200_000, MAX_PAYLOAD]))
    pieces = draw(
        st.lists(st.tuples(st.sampled_from(PIECES), st.integers(1, 10)), min_size=1, max_size=4)
    )
    total_weight = sum(weight for _, weight in pieces)
    room = size - len(head)
    if draw(st.booleans()):
        body = "".join(
            piece * (room * weight // total_weight // len(piece)) for piece, weight in pieces
        )
    else:
        cycle = "".join(piece * weight for piece, weight in pieces)
        body = cycle * (room // len(cycle))
    return (head + body)[:MAX_PAYLOAD]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(adversarial_frames())
@example(EXPLOIT)
@example(EXPLOIT[:14] + '\\"' * 240_000 + "," * 500_000)
@example('42["x","' + '\\"' * 200_000 + '",' + "," * 500_000)
@example("42[" + '"\\\\",' * 199_999)
@example('42["x",' + "9" * 999_000 + "]")
def test_decoding_any_frame_costs_cpu_linear_in_its_length(frame: str) -> None:
    assert len(frame) <= MAX_PAYLOAD
    spent = decode_cpu(frame)
    assert spent < CPU_PER_FRAME_S, f"{spent:.2f} s of CPU for {len(frame)} characters"


def test_an_unterminated_string_hides_its_commas_from_the_element_count() -> None:
    """Inside a string (closed or not) a comma is text, not an element: such a frame is
    refused as invalid JSON, not for its elements, and a closed one decodes."""
    with pytest.raises(codec.ProtocolError, match="invalid JSON"):
        codec.decode(EXPLOIT)
    closed = '42["x","' + '\\"' * 12_000 + "," * 10_001 + '"]'
    assert codec.decode(closed) == codec.Event("x", ('"' * 12_000 + "," * 10_001,))
    with pytest.raises(codec.ProtocolError, match="more than 10000 elements"):
        codec.decode('42["x","\\\\",' + "1," * 10_001 + "1]")


def test_an_integer_past_100_digits_is_refused_with_the_packets_head() -> None:
    with pytest.raises(codec.RefusedPayload) as caught:
        codec.decode('427["x",' + "9" * 101 + "]")
    assert (caught.value.kind, caught.value.ack_id) == ("2", 7)
    assert codec.decode('42["x",-' + "9" * 100 + "]") == codec.Event("x", (-(10**100 - 1),))


# Every pattern the application applies to what a client sends, with the text that would
# make a backtracking one of them explode (the characters its quantifiers share).
CLIENT_PATTERNS: list[tuple[re.Pattern[bytes], bytes]] = [
    (http_head._HEADER, b"a:" + b"a \t" * 5_000 + b" " * 5_000 + b"\x01"),
    (http_head._REQUEST_LINE, b"GET /" + b"/" * 16_000 + b" HTTP/1.2"),
]


@pytest.mark.parametrize("pattern,text", CLIENT_PATTERNS)
def test_the_request_head_patterns_cost_linear_time(
    pattern: re.Pattern[bytes], text: bytes
) -> None:
    started = time.process_time()
    with cpu_limit(CPU_STOP_S):
        for _ in range(10):
            pattern.fullmatch(text)
    assert time.process_time() - started < CPU_PER_FRAME_S
