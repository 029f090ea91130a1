"""The Engine.IO v4 / Socket.IO v5 codec: spec vectors, round trips, and hostile frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rooms.socketio import codec
from rooms.socketio.codec import (
    MAX_JSON_DEPTH,
    RESERVED_EVENTS,
    Ack,
    Close,
    Connect,
    ConnectError,
    Disconnect,
    Event,
    InvalidText,
    Open,
    Packet,
    Ping,
    Pong,
    ProtocolError,
    decode,
    encode,
    encode_event,
)

OPEN_FRAME = (
    '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,'
    '"pingTimeout":20000,"maxPayload":1000000}'
)

# Frames from the socket.io-protocol v5 Readme, its test-suite and docs/socketio-codec.md,
# with the packet each one means. All of them are also what `encode` writes for that packet.
VECTORS: list[tuple[str, Packet]] = [
    (OPEN_FRAME, Open("lv_VI97HAXpY6yYWAAAC", 25000, 20000, 1_000_000)),
    ("1", Close()),
    ("2", Ping()),
    ("3", Pong()),
    ("2probe", Ping("probe")),
    ("3probe", Pong("probe")),
    ("40", Connect()),
    ('40{"token":"123"}', Connect({"token": "123"})),
    ('40/admin,{"token":"123"}', Connect({"token": "123"}, "/admin")),
    ("40/custom,", Connect(None, "/custom")),
    ('40{"sid":"wZX3oN0bSVIhsaknAAAI"}', Connect({"sid": "wZX3oN0bSVIhsaknAAAI"})),
    ("41", Disconnect()),
    ("41/admin,", Disconnect("/admin")),
    ('42["foo"]', Event("foo")),
    ('42/admin,["bar"]', Event("bar", namespace="/admin")),
    ('4212["foo"]', Event("foo", ack_id=12)),
    ('421["join","Maths"]', Event("join", ("Maths",), ack_id=1)),
    ('42["handshake",{"procid":"w3-8f2k"}]', Event("handshake", ({"procid": "w3-8f2k"},))),
    ('42["message",1,"2",{"3":[true]}]', Event("message", (1, "2", {"3": [True]}))),
    (
        '42456["message-with-ack",1,"2",{"3":[false]}]',
        Event("message-with-ack", (1, "2", {"3": [False]}), ack_id=456),
    ),
    ('43/admin,12["bar"]', Ack(("bar",), 12, "/admin")),
    ('4312["bar"]', Ack(("bar",), 12)),
    ('431[{"ok":true}]', Ack(({"ok": True},), 1)),
    ('43456[1,"2",{"3":[false]}]', Ack((1, "2", {"3": [False]}), 456)),
    ('44{"message":"Not authorized"}', ConnectError("Not authorized")),
    ('44/random,{"message":"Invalid namespace"}', ConnectError("Invalid namespace", "/random")),
]


@pytest.mark.parametrize(("frame", "packet"), VECTORS, ids=[f for f, _ in VECTORS])
def test_spec_frame_decodes_to_its_packet(frame: str, packet: Packet) -> None:
    """Each example frame from the specs decodes to the packet it describes."""
    assert decode(frame) == packet


@pytest.mark.parametrize(("frame", "packet"), VECTORS, ids=[f for f, _ in VECTORS])
def test_packet_encodes_to_the_spec_frame(frame: str, packet: Packet) -> None:
    """Each packet encodes to exactly the frame the specs show for it."""
    assert encode(packet) == frame


@pytest.mark.parametrize("packet", [p for _, p in VECTORS], ids=[f for f, _ in VECTORS])
def test_every_packet_type_round_trips(packet: Packet) -> None:
    """Decoding an encoded packet gives the same packet back."""
    assert decode(encode(packet)) == packet


@pytest.mark.parametrize(
    ("frame", "packet"),
    [
        ("40/random", Connect(None, "/random")),
        ("41/custom", Disconnect("/custom")),
        ("40/,", Connect()),
        ('44"Not authorized"', ConnectError("Not authorized")),
        ('44{"message":"nope","data":{"code":1}}', ConnectError("nope")),
        ('42 ["spaced"] ', Event("spaced")),
        ('42["été","日本",{"k":"🙂"}]', Event("été", ("日本", {"k": "🙂"}))),
    ],
)
def test_lenient_frames_decode_like_socket_io_parser(frame: str, packet: Packet) -> None:
    """Frames socket.io-parser accepts but our encoder never writes still decode."""
    assert decode(frame) == packet


@pytest.mark.parametrize(("frame", "name"), [("42[1]", "1"), ('42[2.5,"x"]', "2.5")])
def test_numeric_event_name_becomes_its_string_form(frame: str, name: str) -> None:
    """socket.io-parser allows a numeric event name; it decodes to str(number)."""
    packet = decode(frame)
    assert isinstance(packet, Event)
    assert packet.name == name


def test_encode_event_matches_encode() -> None:
    """encode_event is a shortcut for encoding an Event in the main namespace without ack."""
    args = ("Maths", {"n": 1}, [None, 2.5])
    assert encode_event("join", *args) == encode(Event("join", args))
    assert encode_event("ping-room") == '42["ping-room"]'


def test_encoding_is_compact_and_keeps_unicode() -> None:
    """Encoded JSON has no spaces and writes non-ASCII text as is (no \\u escapes)."""
    assert encode_event("msg", {"a": [1, 2]}, "é") == '42["msg",{"a":[1,2]},"é"]'


@pytest.mark.parametrize(
    "packet",
    [
        Event("connect"),
        Event("x", namespace="admin"),
        Event("x", namespace="/a,b"),
        Event("x", ack_id=-1),
        Event("x", ack_id=10**10),
        Event("x", (float("nan"),)),
        Ack((), 1, namespace="/bad\n"),
    ],
)
def test_encode_refuses_packets_that_would_not_round_trip(packet: Packet) -> None:
    """Our own bugs (reserved names, bad namespace or ack id, NaN) fail loudly when encoding."""
    with pytest.raises(ValueError):
        encode(packet)


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_encode_event_refuses_reserved_names(name: str) -> None:
    """The server cannot emit an event name the clients reserve."""
    with pytest.raises(ValueError):
        encode_event(name)


INVALID_FRAMES: dict[str, str] = {
    "empty frame": "",
    "unknown Engine.IO type": "7",
    "non-digit Engine.IO type": "x",
    "Engine.IO upgrade is polling only": "5",
    "Engine.IO noop is polling only": "6",
    "close with data": "1x",
    "open without payload": "0",
    "open with wrong field types": '0{"sid":1,"upgrades":[],"pingInterval":1,'
    '"pingTimeout":1,"maxPayload":1}',
    "open with boolean interval": '0{"sid":"a","upgrades":[],"pingInterval":true,'
    '"pingTimeout":1,"maxPayload":1}',
    "empty Socket.IO packet": "4",
    "unknown Socket.IO type (conformance 4abc)": "4abc",
    "Socket.IO type 7": "47",
    "binary event without attachment count": "45",
    "binary event with an empty attachment count": '45-["x",{"_placeholder":true,"num":0}]',
    "binary event of 0 attachments": '450-["x"]',
    "binary event of 11 attachments": '4511-["x"]',
    "binary event placing no attachment": '451-["x",1]',
    "binary event placing one attachment twice": '452-["x",{"_placeholder":true,"num":0},'
    '{"_placeholder":true,"num":0}]',
    "binary event with a non-integer placeholder": '451-["x",{"_placeholder":true,"num":"0"}]',
    "binary event with no name": '451-[{"_placeholder":true,"num":0}]',
    "binary ack without ack id": '461-[{"_placeholder":true,"num":0}]',
    "binary ack payload not an array": '461-0{"_placeholder":true,"num":0}',
    "event payload is an object (conformance 42{})": "42{}",
    "letters where the ack id goes (conformance 42abc)": '42abc["message-with-ack",1]',
    "letters after the ack id": '421a["x"]',
    "event without payload": "42",
    "event with ack id but no payload": "4212",
    "event with empty array": "42[]",
    "event name is null": "42[null]",
    "event name is a boolean": "42[true]",
    "event name is an object": '42[{"a":1}]',
    "ack id of 11 digits": '4212345678901["x"]',
    "ack without ack id": '43["x"]',
    "ack payload not an array": '431{"a":1}',
    "ack without payload": "431",
    "ack id on connect": "401",
    "ack id on connect error": '441{"message":"x"}',
    "connect payload is an array": "40[]",
    "connect payload is a string": '40"x"',
    "connect payload is null": "40null",
    "disconnect with payload": "41{}",
    "disconnect namespace with payload": '41/admin,["x"]',
    "connect error without payload": "44",
    "connect error without message": '44{"msg":"x"}',
    "connect error with non-string message": '44{"message":1}',
    "connect error payload is an array": '44["x"]',
    "namespace with a control character": "40/ad\x00min,",
    "namespace with a newline": "40/ad\nmin",
    "invalid JSON": '42["x"',
    "trailing garbage after JSON": '42["x"]garbage',
    "two JSON values": '42["x"]["y"]',
    "NaN is not JSON": '42["x",NaN]',
    "Infinity is not JSON": '42["x",-Infinity]',
    "number overflowing to infinity": '42["x",1e999]',
    "integer with too many digits": '42["x",' + "1" * 5000 + "]",
    "JSON one level too deep": '42["x",' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "]",
    "JSON objects nested too deep": '42["x",' + '{"a":' * 40 + "1" + "}" * 40 + "]",
    "JSON nested 100 deep (as in the brief)": "42[" + "[" * 100 + "]" * 100 + "]",
    "event argument nested 100 deep": '42["x",' + "[" * 100 + "]" * 100 + "]",
    "repeated event heads (42[42[...)": "42[" * 100_000,
    "unclosed brackets deep enough to exhaust recursion": "42" + "[" * 100_000,
    "closed brackets deep enough to exhaust recursion": "42" + "[" * 50_000 + "]" * 50_000,
}


@pytest.mark.parametrize("frame", INVALID_FRAMES.values(), ids=INVALID_FRAMES.keys())
def test_invalid_frame_raises_protocol_error(frame: str) -> None:
    """Every frame a conforming server must refuse raises ProtocolError (the socket is closed)."""
    with pytest.raises(ProtocolError):
        decode(frame)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("", "empty"),
        ("45", "attachment count"),
        ('451-["x",1]', "placeholders do not name the 1 attachments"),
        ('42["connect"]', "reserved"),
        ('4212345678901["x"]', "ack id"),
        ('42["x",' + "[" * 100 + "]" * 100 + "]", "nested"),
        ("42" + "[" * 1_000, "nested"),
        ('42["x",' + "[]," * 250_000 + "[]]", "more than 10000 elements"),
        ('42["join","\\ud800"]', "lone surrogate"),
        ("5", "polling"),
    ],
)
def test_protocol_error_says_what_was_wrong(frame: str, message: str) -> None:
    """The error message names the problem, for the log line written when the socket closes."""
    with pytest.raises(ProtocolError, match=message):
        decode(frame)


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_event_name_is_refused(name: str) -> None:
    """An EVENT named like a reserved event is a protocol error."""
    with pytest.raises(ProtocolError):
        decode("42" + json.dumps([name]))


def test_json_at_the_depth_limit_is_accepted() -> None:
    """Nesting exactly MAX_JSON_DEPTH levels (counting the packet array) is allowed."""
    inner = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert decode(f'42["x",{inner}]') == Event("x", (json.loads(inner),))


def test_many_shallow_brackets_are_not_mistaken_for_depth() -> None:
    """A long but flat payload passes the depth check."""
    args = tuple([i] for i in range(1000))
    assert decode(encode(Event("x", args))) == Event("x", args)


def test_elements_in_strings_do_not_count() -> None:
    """Commas and brackets inside strings are text, not structure: a long one is accepted."""
    text = ",[{" * 20_000
    assert decode(json_event("x", text)) == Event("x", (text,))


def json_event(name: str, *args: object) -> str:
    return "42" + json.dumps([name, *args], ensure_ascii=False)


@pytest.mark.parametrize(
    ("frame", "kind", "ack_id"),
    [
        ('40{"id_user":"\\ud800"}', "0", None),
        ('42["identity-change",{"name":"\\udfff"}]', "2", None),
        ('421["join","a\\ud83d"]', "2", 1),
        ('42["\\ud800"]', "2", None),
        ('42["x",{"\\ud800":1}]', "2", None),
    ],
)
def test_a_lone_surrogate_anywhere_is_invalid_text_with_the_packet_head(
    frame: str, kind: str, ack_id: int | None
) -> None:
    """Valid JSON, but not UTF-8 text: refused at decode time, saying whom to answer."""
    with pytest.raises(InvalidText) as caught:
        decode(frame)
    assert (caught.value.kind, caught.value.ack_id) == (kind, ack_id)


def test_a_surrogate_pair_is_one_character_and_accepted() -> None:
    assert decode('42["x","\\ud83d\\ude00"]') == Event("x", ("\U0001f600",))


def test_ack_id_of_ten_digits_is_accepted() -> None:
    """The longest ack id allowed has ten digits."""
    assert decode('429999999999["x"]') == Event("x", ack_id=9_999_999_999)


def test_frame_longer_than_max_payload_is_refused() -> None:
    """A frame of more characters than maxPayload is refused before it is parsed."""
    frame = encode_event("x", "a" * 100)
    assert decode(frame, max_payload=len(frame)) == Event("x", ("a" * 100,))
    with pytest.raises(ProtocolError, match="maxPayload"):
        decode(frame, max_payload=len(frame) - 1)
    with pytest.raises(ProtocolError):
        decode("4" * 1_000_001)


def test_protocol_error_is_a_value_error() -> None:
    """Callers that catch ValueError also catch protocol errors."""
    assert issubclass(ProtocolError, ValueError)


# --- property tests -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
namespaces = st.just("/") | st.text(
    alphabet=st.characters(exclude_characters=",", exclude_categories=("C", "Z")),
    min_size=1,
    max_size=12,
).map(lambda s: "/" + s)
event_names = st.text(max_size=20).filter(lambda s: s not in RESERVED_EVENTS)
ack_ids = st.integers(min_value=0, max_value=9_999_999_999)
args = st.lists(json_values, max_size=5).map(tuple)

socketio_packets: st.SearchStrategy[Packet] = st.one_of(
    st.builds(Event, event_names, args, st.none() | ack_ids, namespaces),
    st.builds(Ack, args, ack_ids, namespaces),
    st.builds(Connect, st.none() | st.dictionaries(st.text(max_size=8), json_values), namespaces),
    st.builds(Disconnect, namespaces),
    st.builds(ConnectError, st.text(), namespaces),
)
engineio_packets: st.SearchStrategy[Packet] = st.one_of(
    st.just(Close()),
    st.builds(Ping, st.text()),
    st.builds(Pong, st.text()),
    st.builds(
        Open,
        st.text(),
        st.integers(1, 2**31),
        st.integers(1, 2**31),
        st.integers(1, 2**31),
    ),
)


@given(socketio_packets | engineio_packets)
def test_decode_inverts_encode(packet: Packet) -> None:
    """decode(encode(p)) == p for any packet with JSON-able contents."""
    assert decode(encode(packet)) == packet


@given(st.text())
def test_arbitrary_text_raises_only_protocol_error(frame: str) -> None:
    """Any string either decodes or raises ProtocolError; nothing else escapes."""
    _decode_or_protocol_error(frame)


PROTOCOLISH = '0123456789[]{},"/abc-:. \\nNaI'


@given(st.text(alphabet=PROTOCOLISH, max_size=60))
def test_protocol_like_text_raises_only_protocol_error(frame: str) -> None:
    """Frames built from the protocol's own characters never raise anything but ProtocolError."""
    _decode_or_protocol_error(frame)


@given(st.sampled_from(["4", "40", "42", "43", "44", "4212", "42/a,", "0"]), st.text(PROTOCOLISH))
def test_protocol_prefix_with_garbage_raises_only_protocol_error(head: str, tail: str) -> None:
    """Valid packet heads followed by garbage reach the deeper checks and still fail cleanly."""
    _decode_or_protocol_error(head + tail)


@given(socketio_packets, st.integers(min_value=0, max_value=40))
def test_truncated_frame_raises_only_protocol_error(packet: Packet, cut: int) -> None:
    """A valid frame cut short decodes to something or raises ProtocolError."""
    frame = encode(packet)
    _decode_or_protocol_error(frame[: max(0, len(frame) - cut)])


def _decode_or_protocol_error(frame: str) -> Any:
    try:
        return decode(frame)
    except ProtocolError:
        return None


def test_module_has_no_django_or_asyncio_imports() -> None:
    """The codec stays stdlib-only so it can be tested and reused without Django."""
    assert codec.__file__ is not None
    with open(codec.__file__, encoding="utf-8") as source:
        imports = [line for line in source if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "django" in line or "asyncio" in line]


# ---- binary packets: a head, then its attachments as binary frames ----------------------


def test_a_binary_event_is_its_head_then_its_attachments() -> None:
    """As socket.io-client sends `emit("x", {a: Buffer, b: [Buffer]})`: the head places each
    attachment; `assemble` puts them back where the placeholders were."""
    frame = '452-["x",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1}]}]'
    head = decode(frame)
    assert head == codec.BinaryHead("5", 2, ["x", {"a": placeholder(0), "b": [placeholder(1)]}])
    assert isinstance(head, codec.BinaryHead)
    assert codec.assemble(head, [b"\x00", b"\xff"]) == Event("x", ({"a": b"\x00", "b": [b"\xff"]},))


def test_a_binary_ack_and_an_event_on_a_namespace_with_an_ack_id() -> None:
    ack = decode('461-/admin,7[{"_placeholder":true,"num":0}]')
    assert isinstance(ack, codec.BinaryHead)
    assert codec.assemble(ack, [b"ok"]) == Ack((b"ok",), 7, "/admin")
    event = decode('451-3["x",{"_placeholder":true,"num":0}]')
    assert isinstance(event, codec.BinaryHead)
    assert codec.assemble(event, [b""]) == Event("x", (b"",), 3)


def test_assemble_wants_exactly_the_announced_attachments() -> None:
    head = decode('451-["x",{"_placeholder":true,"num":0}]')
    assert isinstance(head, codec.BinaryHead)
    for attachments in ([], [b"a", b"b"]):
        with pytest.raises(ProtocolError, match="expected 1 attachments"):
            codec.assemble(head, attachments)


def test_an_event_with_bytes_is_encoded_as_the_official_clients_send_it() -> None:
    """socket.io-parser's deconstructPacket: placeholders numbered in order, the attachments
    after the text frame; without bytes, the plain text frame."""
    frame = codec.encode_event_frame("identity-change", {"a": b"\x01", "b": [b"\x02"], "n": 1})
    assert frame == [
        '452-["identity-change",{"a":{"_placeholder":true,"num":0},'
        '"b":[{"_placeholder":true,"num":1}],"n":1}]',
        b"\x01",
        b"\x02",
    ]
    assert codec.encode_event_frame("x", {"n": 1}) == codec.encode_event("x", {"n": 1})
    assert codec.frame_size(frame) == len(frame[0]) + 2
    head = decode(frame[0])
    assert isinstance(head, codec.BinaryHead)
    assert codec.assemble(head, [b"\x01", b"\x02"]) == Event(
        "identity-change", ({"a": b"\x01", "b": [b"\x02"], "n": 1},)
    )
    with pytest.raises(ValueError, match="more than 10"):
        codec.encode_event_frame("x", [b"."] * 11)


def placeholder(num: int) -> dict[str, object]:
    return {"_placeholder": True, "num": num}
