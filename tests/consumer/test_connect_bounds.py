"""CONNECT packets a client built to hurt: each is answered with a CONNECT_ERROR that
names the problem in a few words, and nothing is registered.

An id_user of thousands of digits, as a string or as a JSON number, in the CONNECT packet
or in the query: Python refuses to convert a string of more than 4,300 digits to an int
(CVE-2020-10735), and a database refuses an id past its integer range. A CONNECT that is
not even valid JSON is answered before its connection is closed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rooms.cluster.node import WorkerNode
from rooms.socketio import codec
from tests.consumer.conftest import Client, socket_path
from users import services

pytestmark = pytest.mark.django_db(transaction=True)

DIGITS = "7" * 5_000
# The longest message a refusal may carry: the client is told, not echoed its 5,000 digits.
MESSAGE_CHARS = 100


def test_a_number_of_ten_digits_names_a_user_and_one_more_digit_nobody() -> None:
    assert services.parse_id_user(9_999_999_999) == 9_999_999_999
    assert services.parse_id_user(10_000_000_000) is None
    assert services.parse_id_user("1" + "0" * 10) is None


@pytest.mark.parametrize(
    ("query", "frame", "expected"),
    [
        ({}, '40{"id_user":"' + DIGITS + '"}', "id_user longer than 10 characters"),
        ({}, '40{"id_user":' + DIGITS + "}", "a JSON integer longer than 100 digits"),
        ({}, '40{"id_user":' + DIGITS[:4_000] + "}", "a JSON integer longer than 100 digits"),
        ({}, '40{"id_user":' + DIGITS[:20] + "}", "id_user longer than 10 characters"),
        ({"id_user": DIGITS}, "40", "id_user longer than 10 characters"),
    ],
    ids=["string", "number", "number-under-python-limit", "number-past-int64", "query"],
)
async def test_an_id_user_of_thousands_of_digits_gets_connect_error_and_registers_nothing(
    raw_client: Callable[..., Client],
    node: WorkerNode,
    query: dict[str, str],
    frame: str,
    expected: str,
) -> None:
    client = raw_client(socket_path(room="Maths", **query))
    await client.open()
    await client.send(frame)
    reply = await client.recv()
    assert isinstance(reply, codec.ConnectError), reply
    assert len(reply.message) <= MESSAGE_CHARS, reply.message[:200]
    assert reply.message == expected
    await client.assert_nothing()
    assert len(node.registry) == 0
    # the connection is still usable: a valid CONNECT follows
    await client.connect_namespace({"id_user": "1"})
    assert [s.id_user for s in node.registry.all()] == ["1"]


async def test_a_malformed_connect_gets_connect_error_then_its_connection_is_closed(
    raw_client: Callable[..., Client], node: WorkerNode
) -> None:
    client = raw_client(socket_path())
    await client.open()
    await client.send('40{"id_user":"' + '\\"' * 12_000 + "," * 10_001)
    reply = await client.recv()
    assert isinstance(reply, codec.ConnectError), reply
    assert reply.message.startswith("invalid JSON payload: Unterminated string"), reply
    assert reply.message.endswith(": disconnecting")
    await client.assert_closed()
    assert len(node.registry) == 0
