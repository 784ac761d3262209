"""Tests of hub.codec: round trips, negotiation, every DecodeError case, and fuzzing."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.codec import (
    DEFAULT_LIMITS,
    DecodeLimits,
    EncodedEvent,
    WireFormat,
    decode_frame,
    decode_trusted_frame,
    encode_message,
    join_frame,
    pack,
    unpack,
)
from hub.errors import DecodeError

MP = WireFormat.MSGPACK
JS = WireFormat.JSON
FORMATS = [MP, JS]
INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1

SETTINGS = settings(max_examples=200, deadline=None)


# --- strategies -------------------------------------------------------------------------------

KEYS = st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, UINT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
)


def _values(depth: int) -> st.SearchStrategy[Any]:
    """Valid values nesting at most ``depth`` more levels of maps/lists."""
    if depth == 0:
        return SCALARS
    inner = _values(depth - 1)
    return SCALARS | st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3)


MESSAGES = st.dictionaries(KEYS, _values(3), max_size=4)  # depth <= 4, far inside the limits


def _nest(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


# Anything json.dumps accepts, including what the codec must refuse: non-maps, huge ints, NaN,
# deep nesting.
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
) | st.tuples(st.integers(0, 40), st.just({})).map(lambda t: _nest(t[1], t[0]))

# Anything msgpack.packb accepts, including non-str keys, bin, ext and timestamps.
MP_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(INT_MIN, UINT_MAX)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4))
    | st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1))
)
MP_KEYS = st.text(max_size=4) | st.integers(-5, 5) | st.binary(max_size=4)
ANY_MSGPACK = st.recursive(
    MP_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(MP_KEYS, inner, max_size=3),
    max_leaves=12,
) | st.tuples(st.integers(0, 40), st.just({})).map(lambda t: _nest(t[1], t[0]))


def _assert_clean(result: list[Any], limits: DecodeLimits = DEFAULT_LIMITS) -> None:
    """What decode_frame promises about anything it returns."""
    assert isinstance(result, list)
    assert 1 <= len(result) <= limits.max_messages_per_frame
    stack: list[tuple[Any, int]] = [(m, 1) for m in result]
    for message in result:
        assert type(message) is dict
    while stack:
        node, depth = stack.pop()
        assert depth <= limits.max_depth
        assert len(node) <= limits.max_container_items
        if isinstance(node, dict):
            assert all(type(k) is str for k in node)
            values = list(node.values())
        else:
            values = node
        for value in values:
            if type(value) in (dict, list):
                stack.append((value, depth + 1))
            else:
                assert value is None or type(value) in (bool, int, float, str)
                if type(value) is int:
                    assert INT_MIN <= value <= UINT_MAX
                if type(value) is float:
                    assert math.isfinite(value)
                if type(value) is str:
                    value.encode("utf-8")  # no lone surrogates


def _decode_or_error(fmt: WireFormat, data: bytes | str) -> None:
    try:
        result = decode_frame(fmt, data)
    except DecodeError:
        return
    _assert_clean(result)


# --- round trips ------------------------------------------------------------------------------


# Each generated example is checked in both formats: generating nested maps is the slow part.
@SETTINGS
@given(message=MESSAGES)
def test_single_message_round_trip(message: dict[str, Any]) -> None:
    for fmt in FORMATS:
        assert decode_frame(fmt, encode_message(fmt, message)) == [message]


@SETTINGS
@given(messages=st.lists(MESSAGES, min_size=1, max_size=4))
def test_joined_frame_round_trip(messages: list[dict[str, Any]]) -> None:
    # A client's trusted decoding gives the same messages as the hub's checked one.
    for fmt in FORMATS:
        frame = join_frame(fmt, [encode_message(fmt, m) for m in messages])
        assert decode_frame(fmt, frame) == messages
        assert decode_trusted_frame(fmt, frame) == messages


def test_a_trusted_frame_keeps_the_limits_and_wants_maps() -> None:
    small = DecodeLimits(max_frame_bytes=64)
    with pytest.raises(DecodeError):
        decode_trusted_frame(MP, msgpack.packb({"a": "x" * 100}), small)
    with pytest.raises(DecodeError):
        decode_trusted_frame(MP, msgpack.packb([1, 2]))
    with pytest.raises(DecodeError):
        decode_trusted_frame(JS, "[1, 2]")
    with pytest.raises(DecodeError):
        decode_trusted_frame(MP, b"\xc1")
    # What it does not walk: values the hub never sends pass through (the hub built them).
    assert decode_trusted_frame(MP, msgpack.packb({"a": b"raw"})) == [{"a": b"raw"}]


def test_encoded_types_match_frame_kind() -> None:
    assert isinstance(encode_message(MP, {"a": 1}), bytes)
    assert isinstance(encode_message(JS, {"a": 1}), str)
    assert MP.binary
    assert not JS.binary


def test_json_is_compact_and_keeps_unicode() -> None:
    assert encode_message(JS, {"a": [1, 2], "t": "é"}) == '{"a":[1,2],"t":"é"}'


def test_json_is_lenient_about_whitespace() -> None:
    pretty = json.dumps({"a": {"b": [1, 2]}}, indent=2)
    frame = f"\n  {pretty}\n\n{pretty}\r\n\t{{}}{{}}  "
    assert decode_frame(JS, frame) == [{"a": {"b": [1, 2]}}] * 2 + [{}, {}]


def test_json_accepts_utf8_bytes() -> None:
    assert decode_frame(JS, '{"t":"é"}'.encode()) == [{"t": "é"}]


def test_json_accepts_surrogate_pair_escape() -> None:
    assert decode_frame(JS, '{"t":"\\ud83d\\ude00"}') == [{"t": "\U0001f600"}]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [INT_MIN, UINT_MAX, 0, -1])
def test_64_bit_integer_bounds_accepted(fmt: WireFormat, value: int) -> None:
    assert decode_frame(fmt, encode_message(fmt, {"n": value})) == [{"n": value}]


def test_pack_unpack_keeps_bytes_and_any_keys() -> None:
    envelope = {"node": "a", "payload": b"\x00\xff", 3: [1, 2.5, None]}
    assert unpack(pack(envelope)) == envelope


# --- negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["hub.v1.msgpack"], (MP, "hub.v1.msgpack")),
        (["hub.v1.json"], (JS, "hub.v1.json")),
        (["hub.v1.json", "hub.v1.msgpack"], (JS, "hub.v1.json")),
        (["hub.v1.msgpack", "hub.v1.json"], (MP, "hub.v1.msgpack")),
        (["chat", "hub.v2.json", "hub.v1.json"], (JS, "hub.v1.json")),
        (["HUB.V1.JSON"], (MP, None)),
        (["chat"], (MP, None)),
        ([], (MP, None)),
    ],
)
def test_negotiate(offered: list[str], expected: tuple[WireFormat, str | None]) -> None:
    assert WireFormat.negotiate(offered) == expected


# --- decode errors ----------------------------------------------------------------------------

SMALL = DecodeLimits(
    max_frame_bytes=64, max_depth=3, max_container_items=4, max_messages_per_frame=3
)


def _enc(fmt: WireFormat, obj: Any) -> bytes | str:
    if fmt is MP:
        packed: bytes = msgpack.packb(obj, use_bin_type=True)
        return packed
    return json.dumps(obj)


def _raises(fmt: WireFormat, data: bytes | str, limits: DecodeLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(DecodeError) as info:
        decode_frame(fmt, data, limits)
    reason = str(info.value)
    assert 0 < len(reason.encode()) <= 123  # fits a WebSocket close reason
    return reason


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        (MP, b"\xc1"),  # a byte msgpack never uses
        (MP, b"\x81\xa1a\xc1"),
        (MP, b"\x91"),  # a list header whose item never comes
        (MP, b"\x80\x92\xc0"),  # a complete map, then a truncated list
        (JS, "{not json}"),
        (JS, '{"a": 1,}'),
        (JS, "{'a': 1}"),
        (JS, b"{]"),
    ],
)
def test_invalid_encoding(fmt: WireFormat, data: bytes | str) -> None:
    _raises(fmt, data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_or_trailing_data(fmt: WireFormat) -> None:
    whole = encode_message(fmt, {"a": "hello"})
    _raises(fmt, whole[:-1])
    _raises(fmt, join_frame(fmt, [whole, whole[:-3]]))
    if isinstance(whole, bytes):
        _raises(fmt, whole + b"\xa1")  # a str header, missing its byte
    else:
        _raises(fmt, whole + "x")


@pytest.mark.parametrize(("fmt", "data"), [(MP, b""), (JS, ""), (JS, b"")])
def test_empty_frame(fmt: WireFormat, data: bytes | str) -> None:
    _raises(fmt, data)


@pytest.mark.parametrize("data", [" ", "\n\n", " \t\r\n ", b"\n"])
def test_frame_without_messages(data: bytes | str) -> None:
    _raises(JS, data)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("top", [[1], 1, "x", None, True, 1.5, []])
def test_top_level_not_a_map(fmt: WireFormat, top: Any) -> None:
    _raises(fmt, _enc(fmt, top))
    # also when it is not the first message of the frame
    _raises(fmt, join_frame(fmt, [_enc(fmt, {"a": 1}), _enc(fmt, top)]))


@pytest.mark.parametrize(
    "message",
    [{1: "a"}, {b"k": 1}, {"a": {2: 1}}, {"a": [{b"k": 1}]}, {None: 1}, {1.5: 1}],
)
def test_non_str_map_key(message: dict[Any, Any]) -> None:
    _raises(MP, _enc(MP, message))


@pytest.mark.parametrize(
    "value",
    [
        msgpack.ExtType(5, b"x"),
        [msgpack.ExtType(0, b"")],
        {"b": msgpack.ExtType(127, b"abc")},
        msgpack.Timestamp(1, 0),  # ext -1, decoded by msgpack itself unless refused
    ],
)
def test_ext_type(value: Any) -> None:
    _raises(MP, _enc(MP, {"a": value}))


def test_ext_type_at_top_level() -> None:
    _raises(MP, _enc(MP, msgpack.ExtType(1, b"x")))


@pytest.mark.parametrize("value", [b"", b"x", [b"x"], {"b": b"\x00"}])
def test_binary_value(value: Any) -> None:
    assert "binary" in _raises(MP, _enc(MP, {"a": value}))


def test_text_frame_in_msgpack_format() -> None:
    _raises(MP, "{}")


@pytest.mark.parametrize("data", [b'{"a":"\xff"}', b"\xff{}", b'{"a":"\xed\xa0\x80"}'])
def test_json_bytes_not_utf8(data: bytes) -> None:
    _raises(JS, data)


@pytest.mark.parametrize(
    "data", ['{"a":"\\ud800"}', '{"\\udfff":1}', '{"a":["x\\udc00y"]}', '{"a":"\ud800"}']
)
def test_json_lone_surrogate(data: str) -> None:
    _raises(JS, data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_frame_too_large(fmt: WireFormat) -> None:
    limits = DecodeLimits(max_frame_bytes=32)
    fits = encode_message(fmt, {"a": "x" * 20})
    assert decode_frame(fmt, fits, limits)
    _raises(fmt, encode_message(fmt, {"a": "x" * 40}), limits)
    _raises(fmt, encode_message(fmt, {"a": "x" * 100_000}))


def test_json_frame_size_counts_utf8_bytes() -> None:
    limits = DecodeLimits(max_frame_bytes=32)
    frame = encode_message(JS, {"a": "é" * 13})  # 21 characters, 34 bytes
    assert isinstance(frame, str)
    assert len(frame) <= 32 < len(frame.encode())
    _raises(JS, frame, limits)
    _raises(JS, frame.encode(), limits)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("container", ["list", "map"])
def test_too_deep(fmt: WireFormat, container: str) -> None:
    def nest(levels: int) -> dict[str, Any]:
        inner: Any = 0
        for _ in range(levels):
            inner = [inner] if container == "list" else {"k": inner}
        return {"a": inner}

    assert decode_frame(fmt, _enc(fmt, nest(2)), SMALL) == [nest(2)]  # depth 3
    assert "deeper" in _raises(fmt, _enc(fmt, nest(3)), SMALL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_pathologically_deep_frame(fmt: WireFormat) -> None:
    levels = 30_000  # far past the Python recursion limit and msgpack's own stack
    if fmt is MP:
        data: bytes | str = b"\x81\xa1a" + b"\x91" * levels + b"\xc0"
    else:
        data = '{"a":' + "[" * levels + "]" * levels + "}"
    _raises(fmt, data)
    _raises(fmt, data[: len(data) // 2])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "make",
    [
        lambda n: {"a": list(range(n))},
        lambda n: {"a": {str(i): i for i in range(n)}},
        lambda n: {str(i): i for i in range(n)},
    ],
)
def test_container_too_long(fmt: WireFormat, make: Any) -> None:
    assert decode_frame(fmt, _enc(fmt, make(4)), SMALL) == [make(4)]
    _raises(fmt, _enc(fmt, make(5)), SMALL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_too_many_messages(fmt: WireFormat) -> None:
    one = encode_message(fmt, {})
    assert decode_frame(fmt, join_frame(fmt, [one] * 3), SMALL) == [{}] * 3
    assert "messages" in _raises(fmt, join_frame(fmt, [one] * 4), SMALL)
    _raises(fmt, join_frame(fmt, [one] * (DEFAULT_LIMITS.max_messages_per_frame + 1)))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "[NaN]", "1e400", "-1e999"])
def test_json_non_finite_numbers(literal: str) -> None:
    _raises(JS, f'{{"a":{literal}}}')


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_msgpack_non_finite_numbers(value: float) -> None:
    # refused like in JSON, so every decoded message can be relayed to a JSON client
    _raises(MP, _enc(MP, {"a": [value]}))


@pytest.mark.parametrize(
    "literal", [str(UINT_MAX + 1), str(INT_MIN - 1), "1" * 5000, "-" + "9" * 30, "0" * 21]
)
def test_json_integer_out_of_range(literal: str) -> None:
    _raises(JS, f'{{"n":{literal}}}')


# --- fuzz -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=256))
def test_fuzz_random_bytes(fmt: WireFormat, data: bytes) -> None:
    _decode_or_error(fmt, data)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=500, deadline=None)
@given(data=st.text(st.characters(codec=None, exclude_categories=()), max_size=256))
def test_fuzz_random_text(fmt: WireFormat, data: str) -> None:
    _decode_or_error(fmt, data)


@SETTINGS
@given(objs=st.lists(ANY_JSON, min_size=1, max_size=4), sep=st.sampled_from(["\n", "", " "]))
def test_fuzz_json_values(objs: list[Any], sep: str) -> None:
    frame = sep.join(json.dumps(o) for o in objs)
    _decode_or_error(JS, frame)
    _decode_or_error(JS, frame.encode())


@SETTINGS
@given(objs=st.lists(ANY_MSGPACK, min_size=1, max_size=4), cut=st.integers(0, 8))
def test_fuzz_msgpack_values(objs: list[Any], cut: int) -> None:
    frame = b"".join(msgpack.packb(o, use_bin_type=True) for o in objs)
    _decode_or_error(MP, frame)
    _decode_or_error(MP, frame[: len(frame) - cut])


# --- EncodedEvent -----------------------------------------------------------------------------


def test_encoded_event_caches_per_format() -> None:
    message = {"ev": "chat", "room": "panel-1", "seq": 42, "text": "héllo"}
    event = EncodedEvent(message)
    assert event.message is message
    packed = event.for_format(MP)
    text = event.for_format(JS)
    assert isinstance(packed, bytes)
    # JSON as UTF-8 bytes, what goes on the wire: queues count real bytes (é is two).
    compact = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    assert isinstance(text, bytes) and len(text) == len(compact) + 1
    assert event.for_format(MP) is packed
    assert event.for_format(JS) is text
    assert decode_frame(MP, packed) == [message]
    assert decode_frame(JS, text) == [message]


def test_encoded_event_is_slotted() -> None:
    assert not hasattr(EncodedEvent({}), "__dict__")
