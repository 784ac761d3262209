"""The hub's log lines (hub.logs): the JSON formatter, the events as text, ``hub serve``'s
logging configuration (applied in a child process, so this one's stays as pytest set it) and
``HUB_LOG_FORMAT``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from hub import logs
from hub.config import from_environment
from hub.logs import JsonFormatter, LogEvent, log_event, logging_config

COMMON = ("ts", "level", "logger", "event", "node", "sid", "user")


def record(msg: object, *args: object, name: str = "hub.test", **kw: Any) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args or None, None)
    made.created = 1_796_515_200.25  # 2026-12-06T00:00:00.250Z
    for key, value in kw.items():
        setattr(made, key, value)
    return made


def line(made: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter().format(made)
    assert "\n" not in text
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@pytest.fixture
def process_node() -> Iterator[None]:
    logs.name_process_node("n-proc")
    try:
        yield
    finally:
        logs.name_process_node(None)


def test_an_event_is_one_line_with_the_common_fields_then_its_own() -> None:
    event = LogEvent("command.refused", "n1", "n1.abc", "ann", {"code": "forbidden", "op": "x"})
    assert line(record(event)) == {
        "ts": "2026-12-06T00:00:00.250Z",
        "level": "info",
        "logger": "hub.test",
        "event": "command.refused",
        "node": "n1",
        "sid": "n1.abc",
        "user": "ann",
        "code": "forbidden",
        "op": "x",
    }


def test_an_events_fields_never_replace_the_common_ones() -> None:
    event = LogEvent("connection.close", "n1", fields={"level": "fake", "node": "other", "by": 1})
    parsed = line(record(event))
    assert (parsed["level"], parsed["node"], parsed["by"]) == ("info", "n1", 1)


def test_a_plain_record_is_a_log_event_with_its_message_and_the_process_node(
    process_node: None,
) -> None:
    parsed = line(record("broker %s: %d retries", "b1", 3, name="hub.redis.listener"))
    assert list(parsed)[: len(COMMON)] == list(COMMON)
    assert parsed["event"] == "log" and parsed["msg"] == "broker b1: 3 retries"
    assert (parsed["node"], parsed["sid"], parsed["user"]) == ("n-proc", None, None)
    # An event that names no node is the process's too.
    assert line(record(LogEvent("connection.open", None)))["node"] == "n-proc"


def test_a_traceback_goes_in_exc() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        made = record("command %s failed", "chat.send", exc_info=sys.exc_info())
    parsed = line(made)
    assert parsed["msg"] == "command chat.send failed"
    assert parsed["exc"].startswith("Traceback") and "RuntimeError: boom" in parsed["exc"]


def test_uvicorn_request_lines_are_events_without_the_query_string() -> None:
    made = record(
        '%s - "%s %s HTTP/%s" %d',
        "203.0.113.9:5000",
        "GET",
        "/readyz?token=secret-words",
        "1.1",
        200,
        name="uvicorn.access",
    )
    parsed = line(made)
    assert parsed["event"] == "http.request"
    assert (parsed["client"], parsed["method"], parsed["path"], parsed["status"]) == (
        "203.0.113.9:5000",
        "GET",
        "/readyz",
        200,
    )
    assert "secret-words" not in json.dumps(parsed)


def test_values_json_cannot_hold_are_written_as_text() -> None:
    parsed = line(record(LogEvent("x", "n1", fields={"what": frozenset({1})})))
    assert parsed["what"] == "frozenset({1})"


def test_an_event_as_text_names_its_fields() -> None:
    event = LogEvent("connection.auth", "n1", "n1.a", "ann", {"role": "attendee"})
    assert str(event) == "connection.auth node=n1 sid=n1.a user=ann role=attendee"
    assert str(LogEvent("connection.open", "n1")) == "connection.open node=n1"


def test_log_event_builds_nothing_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hub.test.events")
    caplog.set_level(logging.WARNING, logger="hub.test.events")
    log_event(logger, "connection.open", node="n1", client="203.0.113.9")
    assert caplog.records == []
    caplog.set_level(logging.INFO, logger="hub.test.events")
    log_event(logger, "connection.open", node="n1", user="", client="203.0.113.9")
    [made] = caplog.records
    assert made.msg == LogEvent("connection.open", "n1", None, None, {"client": "203.0.113.9"})


def test_text_keeps_uvicorns_own_configuration() -> None:
    from uvicorn.config import LOGGING_CONFIG

    assert logging_config("text") is LOGGING_CONFIG


def test_json_takes_uvicorns_level_and_refuses_an_unknown_one() -> None:
    config = logging_config("json", "error")
    assert config["loggers"]["uvicorn.access"]["level"] == logging.ERROR
    assert config["loggers"]["hub"]["level"] == logging.INFO  # the events stay on
    assert logging_config("json", "debug")["loggers"]["hub"]["level"] == logging.DEBUG
    with pytest.raises(ValueError, match="HUB_LOG_LEVEL"):
        logging_config("json", "loud")


CHILD = """
import logging
from hub import logs
logs.configure("json", "info")
logs.name_process_node("n9")
logs.log_event(logging.getLogger("hub.endpoint"), "connection.open", node="n1", client="::1")
logging.getLogger("chat.messages").warning("a feature's warning")
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "h:1", "GET", "/", "1.1", 200)
logging.getLogger("aioice.ice").info("a library's info line")
logging.getLogger("hub.endpoint").debug("a debug line")
print("stdout stays free of log lines")
"""


def test_json_configuration_puts_every_line_on_stderr_as_json() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout == "stdout stays free of log lines\n"
    lines = [json.loads(text) for text in done.stderr.splitlines()]
    assert [(entry["logger"], entry["event"]) for entry in lines] == [
        ("hub.endpoint", "connection.open"),
        ("chat.messages", "log"),
        ("uvicorn.error", "log"),
        ("uvicorn.access", "http.request"),
    ]
    assert lines[0]["node"] == "n1" and lines[2]["node"] == "n9"


def test_the_log_format_reads_from_the_environment() -> None:
    assert from_environment({}).log_format == "text"
    assert from_environment({"HUB_LOG_FORMAT": "json"}).log_format == "json"
    assert from_environment({"HUB_LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(ValueError, match="HUB_LOG_FORMAT must be text or json"):
        from_environment({"HUB_LOG_FORMAT": "xml"})
