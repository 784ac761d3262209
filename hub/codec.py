"""Wire encoding of the hub: the only module that imports msgpack or json.

Client frames are untrusted: :func:`decode_frame` either returns plain, bounded messages or raises
:class:`~hub.errors.DecodeError`. Whatever it returns can be re-encoded in *either* format, so a
message from a msgpack client can always be relayed to a JSON client and vice versa.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn, cast

import msgpack

from hub.errors import DecodeError

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeLimits",
    "EncodedEvent",
    "Message",
    "WireFormat",
    "decode_frame",
    "encode_message",
    "encode_outgoing",
    "join_frame",
    "pack",
    "unpack",
]

Message = dict[str, Any]


class WireFormat(str, enum.Enum):  # noqa: UP042 -- the agreed interface (str() differs from StrEnum)
    """The two wire formats; the value is the WebSocket subprotocol that selects it."""

    MSGPACK = "hub.v1.msgpack"
    JSON = "hub.v1.json"

    @classmethod
    def negotiate(cls, offered: Sequence[str]) -> tuple[WireFormat, str | None]:
        """Pick the format for a handshake: the first offered subprotocol we know; a client that
        offers neither gets msgpack. Returns (format, subprotocol to accept or None when the client
        offered none of ours)."""
        for name in offered:
            for fmt in cls:
                if fmt.value == name:
                    return fmt, name
        return cls.MSGPACK, None

    @property
    def binary(self) -> bool:
        """True when frames of this format are sent as binary WebSocket frames (msgpack)."""
        return self is WireFormat.MSGPACK


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds :func:`decode_frame` enforces on one inbound frame."""

    max_frame_bytes: int = 65536
    max_depth: int = 16  # nesting of maps/lists inside one message (top-level map = depth 1)
    max_container_items: int = 1024  # entries of any one map or list
    max_messages_per_frame: int = 256


DEFAULT_LIMITS: Final = DecodeLimits()

_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
# 20 characters fit every int in [_INT_MIN, _UINT_MAX]; longer literals are rejected before int()
# so a huge literal costs nothing to refuse.
_MAX_INT_CHARS: Final = 20
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
# The reason may end up as a WebSocket close reason, which is capped at 123 bytes.
_MAX_REASON: Final = 120
_JSON_NOT_WS: Final = re.compile(r"[^ \t\n\r]")


def decode_frame(
    fmt: WireFormat, data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS
) -> list[Message]:
    """Decode one inbound frame into its messages (at least one, in order).

    Every returned message is a dict with str keys whose values are only None, bool, int
    (64-bit), finite float, str, list and dict, within ``limits``. Any other input raises
    :class:`DecodeError` and nothing else.
    """
    if fmt is WireFormat.MSGPACK:
        return _decode_msgpack(data, limits)
    return _decode_json(data, limits)


def decode_trusted_frame(
    fmt: WireFormat, data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS
) -> list[Message]:
    """Decode one frame a hub sent (a client reading its server) into its messages: within
    ``limits`` (sizes and counts, so a broken server cannot exhaust the client) and each a map,
    but without :func:`decode_frame`'s walk of every value, which the hub built itself (a
    third of a busy client's time went to it). Raises :class:`DecodeError` for what cannot be
    decoded."""
    if fmt is WireFormat.MSGPACK:
        return _decode_msgpack(data, limits, trusted=True)
    return _decode_json(data, limits, trusted=True)


def encode_message(fmt: WireFormat, msg: Mapping[str, Any]) -> bytes | str:
    """Encode one server-built (trusted) message: bytes for msgpack, str for JSON."""
    if fmt is WireFormat.MSGPACK:
        packed: bytes = msgpack.packb(msg, use_bin_type=True)
        return packed
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_outgoing(fmt: WireFormat, msg: Mapping[str, Any]) -> bytes:
    """Encode one server-built message as the bytes that go on the wire: msgpack, or JSON in
    UTF-8 (what the hub queues, so that its queues count real bytes in both formats)."""
    if fmt is WireFormat.MSGPACK:
        packed: bytes = msgpack.packb(msg, use_bin_type=True)
        return packed
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def join_frame(fmt: WireFormat, parts: Sequence[bytes | str]) -> bytes | str:
    """Coalesce messages already encoded in ``fmt`` into one frame that :func:`decode_frame`
    splits back into the same messages (JSON parts may be str, or UTF-8 bytes as the hub queues
    them). ``parts`` must be non-empty: an empty frame is invalid."""
    if fmt is WireFormat.MSGPACK:
        return b"".join(cast("Sequence[bytes]", parts))
    if isinstance(parts[0], bytes):
        return b"\n".join(cast("Sequence[bytes]", parts))
    return "\n".join(cast("Sequence[str]", parts))


class EncodedEvent:
    """A server message shared by many recipients, encoded at most once per format.

    :meth:`for_format` returns the very same object on every call for a format, so fan-out does
    not re-encode or copy. ``message`` must not be mutated once the event is created.
    """

    __slots__ = ("_json", "_msgpack", "message")

    def __init__(self, message: Mapping[str, Any]) -> None:
        self.message = message
        self._msgpack: bytes | None = None
        self._json: bytes | None = None

    def for_format(self, fmt: WireFormat) -> bytes:
        """The encoded message for ``fmt`` (see :func:`encode_outgoing`), cached."""
        if fmt is _MSGPACK:
            if self._msgpack is None:
                self._msgpack = encode_outgoing(fmt, self.message)
            return self._msgpack
        if self._json is None:
            self._json = encode_outgoing(fmt, self.message)
        return self._json


# Enum member lookups cost a metaclass call: the hot path compares against this constant.
_MSGPACK: Final = WireFormat.MSGPACK


def pack(obj: Any) -> bytes:
    """Serialize a trusted internal envelope (node to node); bytes values survive as bytes."""
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    """Inverse of :func:`pack`, for trusted data only: no limits, any hashable map key."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _decode_msgpack(
    data: bytes | str, limits: DecodeLimits, *, trusted: bool = False
) -> list[Message]:
    if isinstance(data, str):
        raise DecodeError("msgpack frame must be binary, got text")
    _check_size(len(data), limits)
    try:
        # Most frames hold one message: unpackb costs far less than an Unpacker, and a frame
        # with several (ExtraData) takes the streaming path below.
        single = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_array_len=limits.max_container_items,
            max_map_len=limits.max_container_items,
            ext_hook=_reject_ext,
        )
    except msgpack.ExtraData:
        pass
    except DecodeError:
        raise
    except Exception as exc:  # the same zoo as below: undecodable
        raise DecodeError(_reason("invalid msgpack", exc)) from exc
    else:
        messages: list[Message] = []
        _append_message(messages, single, limits, check_text=False, trusted=trusted)
        return messages
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        use_list=True,
        max_buffer_size=len(data),
        max_array_len=limits.max_container_items,
        max_map_len=limits.max_container_items,
        ext_hook=_reject_ext,
    )
    messages = []
    consumed = 0
    try:
        unpacker.feed(data)
        for obj in unpacker:
            _append_message(messages, obj, limits, check_text=False, trusted=trusted)
            # Read only after a complete object: at the end tell() also counts the headers of
            # a truncated trailing container.
            consumed = unpacker.tell()
    except DecodeError:
        raise
    # The C unpacker raises a zoo of types (ValueError subclasses, UnpackException,
    # UnicodeDecodeError, TypeError...); for untrusted input every one means "undecodable".
    except Exception as exc:
        raise DecodeError(_reason("invalid msgpack", exc)) from exc
    if consumed != len(data):
        raise DecodeError("truncated msgpack data")
    return messages


def _decode_json(
    data: bytes | str, limits: DecodeLimits, *, trusted: bool = False
) -> list[Message]:
    if isinstance(data, str):
        # UTF-8 never shrinks text, so an oversized str is refused before encoding it.
        _check_size(len(data), limits)
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DecodeError("text frame is not valid Unicode") from exc
        _check_size(size, limits)
        text = data
    else:
        _check_size(len(data), limits)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("JSON frame is not valid UTF-8") from exc
    decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)
    # Only \u escapes can smuggle a lone surrogate into a str, which neither UTF-8 nor msgpack
    # can encode; skip the per-string check when the frame has none.
    check_text = "\\u" in text
    messages: list[Message] = []
    pos = 0
    try:
        while True:
            start = _JSON_NOT_WS.search(text, pos)
            if start is None:
                break
            obj, pos = decoder.raw_decode(text, start.start())
            _append_message(messages, obj, limits, check_text=check_text, trusted=trusted)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(_reason("invalid JSON", exc)) from exc
    if not messages:
        raise DecodeError("frame holds no messages")
    return messages


def _check_size(size: int, limits: DecodeLimits) -> None:
    if size == 0:
        raise DecodeError("empty frame")
    if size > limits.max_frame_bytes:
        raise DecodeError(f"frame larger than {limits.max_frame_bytes} bytes")


def _append_message(
    messages: list[Message],
    obj: object,
    limits: DecodeLimits,
    *,
    check_text: bool,
    trusted: bool = False,
) -> None:
    if len(messages) >= limits.max_messages_per_frame:
        raise DecodeError(f"more than {limits.max_messages_per_frame} messages in one frame")
    if not isinstance(obj, dict):
        raise DecodeError("message is not a map")
    if not trusted:
        _check_tree(obj, limits, check_text)
    messages.append(obj)


def _check_tree(root: dict[Any, Any], limits: DecodeLimits, check_text: bool) -> None:
    # Iterative so that nesting can never exhaust the Python stack.
    stack: list[tuple[dict[Any, Any] | list[Any], int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise DecodeError(f"nested deeper than {limits.max_depth}")
        if len(node) > limits.max_container_items:
            raise DecodeError(f"map or list longer than {limits.max_container_items}")
        if isinstance(node, dict):
            for key in node:
                if type(key) is not str:
                    raise DecodeError("map key is not a string")
                if check_text:
                    _check_str(key)
            values: Any = node.values()
        else:
            values = node
        for value in values:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind not in _SCALARS:
                raise DecodeError(
                    "binary values are not allowed" if kind is bytes else "unsupported value type"
                )
            elif kind is float and not math.isfinite(value):
                raise DecodeError("non-finite number")
            elif check_text and kind is str:
                _check_str(value)


def _check_str(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DecodeError("string holds a lone surrogate") from exc


def _reason(prefix: str, exc: Exception) -> str:
    return f"{prefix}: {exc}"[:_MAX_REASON]


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise DecodeError(f"msgpack ext type {code} is not allowed")


def _reject_constant(name: str) -> NoReturn:
    raise DecodeError(f"{name} is not allowed")


def _parse_int(literal: str) -> int:
    if len(literal) > _MAX_INT_CHARS:
        raise DecodeError("integer out of 64-bit range")
    value = int(literal)
    if not _INT_MIN <= value <= _UINT_MAX:
        raise DecodeError("integer out of 64-bit range")
    return value
