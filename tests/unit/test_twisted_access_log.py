"""Twisted's access-log line is formatted only when the daphne.server logger shows it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory
from twisted.web.test.requesthelper import DummyRequest

from rooms.server import twisted_access_log


class Lines:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, line: str) -> None:
        self.written.append(line)


@pytest.fixture
def factory() -> Iterator[tuple[Any, Lines]]:
    twisted_access_log.install()
    made = HTTPFactory(server=None)
    lines = Lines()
    made._logFile = lines
    made._logDateTime = "26/Nov/2026:17:00:00 +0000"
    yield made, lines
    HTTPFactory.log = twisted_access_log.STOCK_LOG  # type: ignore[method-assign]


@pytest.fixture
def shown_at() -> Iterator[Callable[[int], None]]:
    """Sets the logger's level with setLevel (which also clears its cached answers), and
    puts it back after the test."""
    logger = twisted_access_log.shown_by
    before = logger.level
    yield logger.setLevel
    logger.setLevel(before)


def request() -> DummyRequest:
    served = DummyRequest([b"workers"])
    served.uri = b"/workers"
    served.code = 200
    served.sentLength = 2
    return served


def test_no_line_is_formatted_while_the_logger_is_above_info(
    factory: tuple[Any, Lines], shown_at: Callable[[int], None]
) -> None:
    made, lines = factory
    shown_at(logging.WARNING)
    made.log(request())
    assert lines.written == []


def test_the_stock_line_is_written_when_the_logger_shows_info(
    factory: tuple[Any, Lines], shown_at: Callable[[int], None]
) -> None:
    made, lines = factory
    shown_at(logging.INFO)
    made.log(request())
    assert len(lines.written) == 1 and '"GET /workers HTTP/1.0" 200 2' in lines.written[0]
