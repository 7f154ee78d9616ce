"""The split harness's wire: plain data in, exact builtin types out, everything else refused."""

from __future__ import annotations

import math

import pytest

from kernel_lifecycle.boundary import sandbox_calls as calls


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**53, -(2**200), 1.25, -0.0, math.inf, 3 - 4j, "", "é\udc80", b"\x00\xff",
    [], [1, [2, [3]]], (), (1, "a", (None,)), {}, {1: "a", "b": [2], (3, 4): {5: frozenset({6})}},
    {1, "x", (2, 3)}, frozenset({1.5}),
])
def test_round_trip_is_exact(value: object) -> None:
    back = calls.decode(calls.encode(value))
    assert back == value

    def types(v: object) -> object:
        if isinstance(v, (list, tuple)):
            return type(v), [types(x) for x in v]
        if isinstance(v, dict):
            return type(v), sorted((repr(types(k)), repr(types(x))) for k, x in v.items())
        if isinstance(v, (set, frozenset)):
            return type(v), sorted(repr(types(x)) for x in v)
        return type(v)

    assert types(back) == types(value)


def test_nan_survives() -> None:
    assert math.isnan(calls.decode(calls.encode(float("nan"))))


class Int(int):
    pass


class Always:
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize("value", [Int(1), Always(), [Int(1)], {"k": Always()}, (x for x in []), range(3),
                                   bytearray(b"x"), {1: object()}])
def test_anything_else_is_not_plain_data(value: object) -> None:
    with pytest.raises(calls.NotPlainData):
        calls.encode(value)


def test_cycles_are_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(calls.NotPlainData, match="self-referencing"):
        calls.encode(loop)


@pytest.mark.parametrize("raw", [b'{"a": 1}', b'{"t": 1}', b'{"d": [[[1], 2]]}', b'{"s": [[1]]}', b'{"x": 5}',
                                 b'{"c": ["1", 2]}', b"[" * 100000, b"not json", b'{"t": [], "s": []}'])
def test_malformed_data_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="malformed plain data"):
        calls.decode(raw)


def test_apply_keeps_identity_of_unchanged_shapes() -> None:
    inner = [3, 1]
    target = [inner, {"k": {1}}, (inner,)]
    calls._apply(target, [[1, 3], {"k": {1, 2}}, ([1, 3],)])
    assert target == [[1, 3], {"k": {1, 2}}, ([1, 3],)] and target[0] is inner
    grow = [1]
    calls._apply(grow, [1, 2, 3])
    assert grow == [1, 2, 3]
