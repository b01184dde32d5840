from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from yamabiko.server.logs import JsonFormatter, configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    logger = logging.getLogger("yamabiko")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    out = io.StringIO()
    configure_logging("DEBUG", out)
    yield out
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


class Point(msgspec.Struct):
    x: int
    password: str


def test_record_with_extras_is_one_json_line(stream: io.StringIO) -> None:
    logging.getLogger("yamabiko.session").info(
        "request %s",
        "done",
        extra={"session": "s1", "method": "chat/send", "latencyMs": 1.5, "outcome": "ok"},
    )
    assert stream.getvalue().count("\n") == 1
    [line] = lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("ts"))
    assert line == {
        "level": "INFO",
        "logger": "yamabiko.session",
        "msg": "request done",
        "session": "s1",
        "method": "chat/send",
        "latencyMs": 1.5,
        "outcome": "ok",
    }


def test_secret_fields_are_redacted(stream: io.StringIO) -> None:
    logging.getLogger("yamabiko").warning(
        "x",
        extra={
            "token": "t1",
            "Authorization": "Bearer t2",
            "access_token": "t3",
            "apiKey": "t4",
            "params": {"value": "t5", "nested": [{"refreshToken": "t6"}], "ok": 1},
            "point": Point(x=1, password="t7"),
            "sub": "alice",
        },
    )
    [line] = lines(stream)
    for secret in ("t1", "t2", "t3", "t4", "t5", "t6", "t7"):
        assert secret not in stream.getvalue()
    assert line["token"] == "[redacted]"
    assert line["params"] == {
        "value": "[redacted]",
        "nested": [{"refreshToken": "[redacted]"}],
        "ok": 1,
    }
    assert line["point"] == {"x": 1, "password": "[redacted]"}
    assert line["sub"] == "alice"


def test_exception_traceback_in_exc(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("yamabiko").exception("failed", extra={"errorId": "e1"})
    [line] = lines(stream)
    assert line["level"] == "ERROR"
    assert line["errorId"] == "e1"
    assert "Traceback" in line["exc"]
    assert "ValueError: boom" in line["exc"]


def test_unencodable_values_become_strings(stream: io.StringIO) -> None:
    logging.getLogger("yamabiko").info("x", extra={"thing": object(), "n": {1: 2}})
    logging.getLogger("yamabiko").info("y", extra={"odd": {(1, 2): 3}, "token": {(1,): 2}})
    first, second = lines(stream)
    assert first["thing"].startswith("<object object")
    assert first["n"] == {"1": 2}
    assert second["odd"] == "{(1, 2): 3}"
    assert second["token"] == "[redacted]"


def test_fixed_keys_win_over_extras() -> None:
    record = logging.LogRecord("yamabiko", logging.INFO, __file__, 1, "m", None, None)
    record.level = "spoofed"
    assert msgspec.json.decode(JsonFormatter().format(record))["level"] == "INFO"


def test_configure_is_idempotent_and_honours_level(stream: io.StringIO) -> None:
    out = io.StringIO()
    configure_logging("warning", out)
    configure_logging("warning", out)
    logger = logging.getLogger("yamabiko")
    logger.info("hidden")
    logger.warning("shown")
    assert [line["msg"] for line in lines(out)] == ["shown"]
    assert stream.getvalue() == ""  # the first handler was replaced


def test_caplog_still_captures(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="yamabiko"):
        logging.getLogger("yamabiko.x").info("seen", extra={"sub": "alice"})
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("yamabiko.x", "seen")]
