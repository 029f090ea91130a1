"""The Engine.IO v4 session, sans-I/O: handshake, messages, heartbeat and close, on a clock
the test holds. The WebSocket checks of the spec's own conformance suite
(socketio/engine.io-protocol, test-suite/test-suite.js) that apply to this layer come first,
with its figures (pingInterval 300 ms, pingTimeout 200 ms); then the state machine's rules."""

from __future__ import annotations

import json

import pytest

from rooms.engineio import handshake, packets
from rooms.engineio.errors import ProtocolError
from rooms.engineio.packets import Close, Message, Open, Ping, Pong
from rooms.engineio.session import (
    FORCED_CLOSE,
    PING_TIMEOUT,
    TRANSITIONS,
    TRANSPORT_CLOSE,
    CloseConnection,
    InvalidTransition,
    SendPacket,
    Session,
    State,
    Trigger,
)

PING_INTERVAL = 300  # ms, as the conformance suite configures its server
PING_TIMEOUT_MS = 200
T0 = 1000.0  # the transport's clock at the handshake, in seconds


def opened(sid: str = "lv_VI97HAXpY6yYWAAAC") -> Session:
    session = Session(
        sid, ping_interval_ms=PING_INTERVAL, ping_timeout_ms=PING_TIMEOUT_MS, max_payload=1_000_000
    )
    session.open(T0)
    return session


def pinged(session: Session, at: float) -> None:
    assert session.tick(at) == (SendPacket(Ping()),)


# ---- conformance suite: handshake -----------------------------------------------------


def test_handshake_successfully_opens_a_session() -> None:
    """The first packet is OPEN with a string sid, no upgrades over WebSocket, the
    configured heartbeat and maxPayload, and nothing else."""
    session = Session("abc", ping_interval_ms=300, ping_timeout_ms=200, max_payload=1_000_000)
    assert session.state is State.OPENING
    frame = packets.encode(session.open(T0))
    assert session.state is State.OPEN
    assert frame.startswith("0")
    value = json.loads(frame[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert value == {
        "sid": "abc",
        "upgrades": [],
        "pingInterval": PING_INTERVAL,
        "pingTimeout": PING_TIMEOUT_MS,
        "maxPayload": 1_000_000,
    }
    assert packets.decode(frame) == Open("abc", PING_INTERVAL, PING_TIMEOUT_MS, 1_000_000)


@pytest.mark.parametrize(
    "query",
    [
        {"transport": ["websocket"]},
        {"EIO": ["abc"], "transport": ["websocket"]},
        {"EIO": ["3"], "transport": ["websocket"]},
    ],
)
def test_handshake_fails_with_an_invalid_eio_query_parameter(query: dict[str, list[str]]) -> None:
    """No EIO, or one other than 4: refused as the reference server refuses it."""
    assert handshake.refusal(query) == handshake.UNSUPPORTED_PROTOCOL_VERSION
    assert handshake.refusal(query) == handshake.HandshakeError(5, "Unsupported protocol version")


@pytest.mark.parametrize(
    "query",
    [
        {"EIO": ["4"]},
        {"EIO": ["4"], "transport": ["abc"]},
        {"EIO": ["4"], "transport": ["polling"]},
    ],
)
def test_handshake_fails_with_an_invalid_transport_query_parameter(
    query: dict[str, list[str]],
) -> None:
    """No transport, an unknown one, or polling where only WebSocket is served (a
    WebSocket handshake): Transport unknown."""
    websocket_only = frozenset({"websocket"})
    assert handshake.refusal(query, websocket_only) == handshake.HandshakeError(
        0, "Transport unknown"
    )


def test_handshake_of_eio_4_over_either_transport_is_served() -> None:
    for transport in ("websocket", "polling"):
        assert handshake.refusal({"EIO": ["4"], "transport": [transport], "id_user": ["1"]}) is None


# ---- conformance suite: message ---------------------------------------------------------


def test_message_a_plain_text_packet_round_trips() -> None:
    """`4hello` is the message "hello", and encodes back to the same frame."""
    assert packets.decode("4hello") == Message("hello")
    assert packets.encode(Message("hello")) == "4hello"


@pytest.mark.parametrize("frame", ["abc", "", "9", "1x", "5", "6"])
def test_message_an_invalid_packet_format_is_a_protocol_error(frame: str) -> None:
    """What the suite sends as an invalid packet ("abc"), and others like it, raise
    ProtocolError (the transport then closes the session)."""
    with pytest.raises(ProtocolError):
        packets.decode(frame)


def test_message_longer_than_max_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="maxPayload 10"):
        packets.decode("4" + "x" * 10, max_payload=10)


# ---- conformance suite: heartbeat -------------------------------------------------------


def test_heartbeat_sends_ping_packets_a_client_answers() -> None:
    """The server pings every pingInterval, counted from the last PONG; three rounds
    answered keep the session OPEN."""
    session = opened()
    now = T0
    for _ in range(3):
        ping_at = now + PING_INTERVAL / 1000
        assert session.next_deadline == pytest.approx(ping_at)
        assert session.tick(ping_at - 0.001) == ()  # not early
        pinged(session, ping_at)
        now = ping_at + 0.05
        assert session.receive(Pong(), now) == ()
    assert session.state is State.OPEN


def test_heartbeat_closes_the_session_upon_ping_timeout() -> None:
    """No PONG within pingTimeout of the PING: close, for "ping timeout"."""
    session = opened()
    ping_at = T0 + PING_INTERVAL / 1000
    pinged(session, ping_at)
    timeout_at = ping_at + PING_TIMEOUT_MS / 1000
    assert session.next_deadline == pytest.approx(timeout_at)
    assert session.tick(timeout_at - 0.001) == ()
    assert session.tick(timeout_at) == (CloseConnection(PING_TIMEOUT),)
    assert session.state is State.CLOSING
    assert session.close_reason == "ping timeout"
    assert session.next_deadline is None


# ---- conformance suite: close -----------------------------------------------------------


def test_close_packet_forcefully_closes_the_session() -> None:
    """The client's CLOSE (`1`) closes the session at once."""
    session = opened()
    assert packets.decode("1") == Close()
    assert session.receive(Close(), T0 + 0.01) == (CloseConnection(TRANSPORT_CLOSE),)
    assert session.state is State.CLOSING
    assert session.close_reason == "transport close"


# ---- the state machine's own rules ------------------------------------------------------


def test_a_late_pong_does_not_revive_a_timed_out_session() -> None:
    session = opened()
    ping_at = T0 + PING_INTERVAL / 1000
    pinged(session, ping_at)
    session.tick(ping_at + 1)
    assert session.receive(Pong(), ping_at + 1.01) == ()
    assert session.state is State.CLOSING
    assert session.next_deadline is None


def test_packets_after_close_are_ignored() -> None:
    """Once closing, nothing is answered and nothing falls due."""
    session = opened()
    session.close()
    assert session.receive(Ping("probe"), T0 + 0.1) == ()
    assert session.receive(Pong(), T0 + 0.1) == ()
    assert session.receive(Close(), T0 + 0.1) == ()
    assert session.tick(T0 + 60) == ()
    assert session.next_deadline is None
    session.transport_closed()
    assert session.state is State.CLOSED
    assert session.receive(Ping(), T0 + 61) == ()
    assert session.tick(T0 + 61) == ()


def test_an_unasked_pong_changes_nothing() -> None:
    """A PONG with no PING out neither moves the next PING nor counts for the next one."""
    session = opened()
    assert session.receive(Pong(), T0 + 0.1) == ()
    assert session.next_deadline == pytest.approx(T0 + PING_INTERVAL / 1000)
    ping_at = T0 + PING_INTERVAL / 1000
    pinged(session, ping_at)
    assert session.tick(ping_at + PING_TIMEOUT_MS / 1000) == (CloseConnection(PING_TIMEOUT),)


def test_a_pong_moves_the_next_ping_to_ping_interval_after_it() -> None:
    session = opened()
    ping_at = T0 + PING_INTERVAL / 1000
    pinged(session, ping_at)
    session.receive(Pong("any data"), ping_at + 0.15)
    assert session.next_deadline == pytest.approx(ping_at + 0.15 + PING_INTERVAL / 1000)


def test_a_client_ping_is_answered_with_its_data() -> None:
    """`2probe` gets `3probe`, and the heartbeat is untouched."""
    session = opened()
    (output,) = session.receive(Ping("probe"), T0 + 0.1)
    assert output == SendPacket(Pong("probe"))
    assert packets.encode(output.packet) == "3probe"
    assert session.next_deadline == pytest.approx(T0 + PING_INTERVAL / 1000)


def test_an_open_packet_from_the_client_is_a_protocol_error() -> None:
    session = opened()
    with pytest.raises(ProtocolError, match="unexpected Open"):
        session.receive(Open("x", 1, 1, 1), T0 + 0.1)


def test_the_first_close_reason_stands() -> None:
    session = opened()
    session.close("over its frame budget")
    session.close(FORCED_CLOSE)
    session.transport_closed()
    assert session.close_reason == "over its frame budget"
    assert session.state is State.CLOSED


def test_a_connection_gone_closes_the_session_from_any_state() -> None:
    for state in State:
        session = opened()
        session.state = state
        session.transport_closed()
        assert session.state is State.CLOSED


def test_opening_twice_is_a_bug_of_the_transport() -> None:
    session = opened()
    with pytest.raises(InvalidTransition):
        session.open(T0 + 1)


def test_nothing_is_due_before_the_open_packet() -> None:
    session = Session("x", ping_interval_ms=300, ping_timeout_ms=200, max_payload=10)
    assert session.next_deadline is None
    assert session.tick(T0 + 60) == ()
    assert session.receive(Ping(), T0) == ()


def test_every_state_says_where_a_close_leads_and_only_polling_upgrades() -> None:
    """Every state takes CLOSE and TRANSPORT_CLOSED; OPEN is only an OPENING session's, a
    probe only an OPEN one's, UPGRADE and a failed probe only an UPGRADING one's."""
    closes = {Trigger.CLOSE, Trigger.TRANSPORT_CLOSED}
    assert set(TRANSITIONS[State.OPENING]) == closes | {Trigger.OPEN}
    assert set(TRANSITIONS[State.OPEN]) == closes | {Trigger.PROBE}
    assert set(TRANSITIONS[State.UPGRADING]) == closes | {Trigger.UPGRADE, Trigger.PROBE_FAILED}
    assert set(TRANSITIONS[State.CLOSING]) == set(TRANSITIONS[State.CLOSED]) == closes


def polling() -> Session:
    session = Session(
        "s",
        ping_interval_ms=PING_INTERVAL,
        ping_timeout_ms=PING_TIMEOUT_MS,
        max_payload=1_000_000,
        upgrades=("websocket",),
        transport="polling",
    )
    session.open(T0)
    return session


def test_a_polling_session_upgrades_after_its_probe_and_keeps_its_heartbeat() -> None:
    """PING "probe" on the WebSocket is answered with PONG "probe" and pauses polling;
    UPGRADE moves the session to the WebSocket; the heartbeat runs all along."""
    session = polling()
    assert session.probe("probe") == Pong("probe")
    assert session.state is State.UPGRADING and session.transport == "polling"
    pinged(session, T0 + 0.3)
    assert session.receive(Pong(), T0 + 0.35) == ()
    session.upgrade()
    assert (session.state, session.transport) == (State.OPEN, "websocket")
    with pytest.raises(ProtocolError):
        session.probe("probe")  # a second WebSocket for the same sid


def test_a_failed_probe_leaves_the_session_polling_and_a_websocket_one_has_none() -> None:
    session = polling()
    session.probe("probe")
    session.probe_failed()
    assert (session.state, session.transport) == (State.OPEN, "polling")
    with pytest.raises(ProtocolError):
        session.probe("other data")
    with pytest.raises(ProtocolError):
        opened().probe("probe")
    with pytest.raises(InvalidTransition):
        opened().upgrade()


def test_a_late_tick_does_not_give_the_peer_longer_to_answer() -> None:
    """On a busy loop the timer may run after the PING was due: the PONG is still due
    pingTimeout after the PING was due, so a client silent for pingInterval + pingTimeout
    is closed then, however late the ticks came."""
    session = opened()
    pinged(session, T0 + 0.3 + 0.15)  # the PING was due at T0 + 0.3
    assert session.next_deadline == pytest.approx(T0 + 0.5)
    assert session.tick(T0 + 0.5) == (CloseConnection(PING_TIMEOUT),)
