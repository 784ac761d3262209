"""The hub's log lines: events with stable names and fields, one JSON object per line with
``--log-format json``, and the logging configuration of ``hub serve`` (uvicorn's loggers
included).

An event is logged as a :class:`LogEvent` message. With ``json`` every record becomes one line
of :class:`JsonFormatter`: ``ts``, ``level``, ``logger``, ``event``, ``node``, ``sid``,
``user``, then the event's own fields (a record that is no event: ``event`` ``"log"`` and its
``msg``). With ``text`` (the default) logging is configured as it always was: uvicorn's own
format, and the hub's warnings and errors as bare lines; the events, at ``info``, are not shown.

Events carry identifiers, codes and numbers only, never a token, a message's text or another
thing a client wrote (the user id aside): whoever reads the logs is not whoever the event's
people trusted with their words.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogEvent",
    "LogFormat",
    "configure",
    "log_event",
    "logging_config",
    "name_process_node",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

# The packages whose loggers are the hub's own: with ``json`` they log from ``info`` (the
# events); everything else (aiortc, redis...) from ``warning``, as before.
HUB_LOGGERS = ("hub", "rooms", "chat", "polls", "signalling", "networking")

# uvicorn logs each HTTP request on this logger with these arguments: (client address, method,
# path with query string, HTTP version, status).
_ACCESS_LOGGER = "uvicorn.access"
_ACCESS_ARGS = 5

# uvicorn's names of levels (HUB_LOG_LEVEL), ``trace`` its own.
_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One event as a log message: a stable ``name`` (``connection.close``), where it happened
    (``node``, and the connection ``sid`` and ``user`` when it concerns one) and its own
    ``fields`` (identifiers, codes, numbers). ``str()`` gives ``name key=value ...`` for text
    handlers; :class:`JsonFormatter` writes the fields as they are."""

    name: str
    node: str | None
    sid: str | None = None
    user: str | None = None
    fields: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.name]
        for key, value in (("node", self.node), ("sid", self.sid), ("user", self.user)):
            if value is not None:
                parts.append(f"{key}={value}")
        parts.extend(f"{key}={value}" for key, value in self.fields.items())
        return " ".join(parts)


def log_event(
    logger: logging.Logger,
    name: str,
    *,
    node: str | None,
    sid: str | None = None,
    user: str | None = None,
    level: int = logging.INFO,
    **fields: object,
) -> None:
    """Log the event ``name`` on ``logger`` at ``level`` (nothing is built when the level is
    off; on a hot path, check ``logger.isEnabledFor`` first, so that not even the arguments
    are)."""
    if logger.isEnabledFor(level):
        logger.log(level, LogEvent(name, node, sid, user or None, fields))


# The node of this process (``hub serve`` runs one per process), for the records that name none:
# uvicorn's, a warning of the broker.
_process_node: str | None = None


def name_process_node(node_id: str | None) -> None:
    """Make ``node_id`` the ``node`` of every JSON line that does not name its own."""
    global _process_node
    _process_node = node_id


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (see the module docstring): an exception's
    traceback goes in ``exc``; uvicorn's request lines become ``http.request`` events with
    ``client``, ``method``, ``path`` (without its query string: it may hold what a client
    typed) and ``status``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.msg
        if isinstance(message, LogEvent):
            entry["event"] = message.name
            entry["node"] = message.node if message.node is not None else _process_node
            entry["sid"] = message.sid
            entry["user"] = message.user
            for key, value in message.fields.items():
                entry.setdefault(key, value)
        elif record.name == _ACCESS_LOGGER and _is_access(record.args):
            client, method, path, _, status = record.args  # type: ignore[misc]
            path = str(path).partition("?")[0]
            entry.update(
                event="http.request",
                node=_process_node,
                sid=None,
                user=None,
                client=client,
                method=method,
                path=path,
                status=status,
                msg=f"{method} {path} {status}",
            )
        else:
            entry.update(
                event="log", node=_process_node, sid=None, user=None, msg=record.getMessage()
            )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)


def _is_access(args: object) -> bool:
    return isinstance(args, tuple) and len(args) == _ACCESS_ARGS


def logging_config(log_format: LogFormat, level: str = "warning") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``hub serve``, which uvicorn applies as its
    ``log_config``: for ``text``, uvicorn's own (as before); for ``json``, every record on
    stderr through :class:`JsonFormatter`, uvicorn's at ``level`` (``HUB_LOG_LEVEL``), the
    hub's own from ``info`` (or ``level`` if lower), everything else from ``warning``."""
    if log_format == "text":
        from uvicorn.config import LOGGING_CONFIG  # uvicorn loads only when serving

        return LOGGING_CONFIG
    uvicorn_level = _LEVELS.get(level.lower())
    if uvicorn_level is None:
        raise ValueError(f"HUB_LOG_LEVEL must be one of {', '.join(_LEVELS)}, not {level!r}")
    hub_level = min(logging.INFO, uvicorn_level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            **{name: {"level": hub_level} for name in HUB_LOGGERS},
            "uvicorn": {"handlers": ["stderr"], "level": uvicorn_level, "propagate": False},
            "uvicorn.error": {"level": uvicorn_level},
            "uvicorn.access": {"handlers": ["stderr"], "level": uvicorn_level, "propagate": False},
        },
    }


def configure(log_format: LogFormat, level: str = "warning") -> None:
    """Configure this process's logging for ``hub serve`` (see :func:`logging_config`); with
    ``text`` nothing is changed here: uvicorn applies its own when it starts."""
    if log_format == "json":
        logging.config.dictConfig(logging_config(log_format, level))
