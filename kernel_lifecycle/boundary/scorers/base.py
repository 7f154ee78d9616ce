"""What every scorer takes and gives: samples in HumanEval's shape, one verdict per sample."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from kernel_lifecycle.boundary.sandbox import Job, Limits, Outcome, resolve_mode, run_batch
from kernel_lifecycle.errors import KernelLifecycleError, NotFoundError

# bump when a scorer's program construction or verdict rules change: it goes into version()
# and from there into the harness config hash, so reports scored differently never compare
# 2: python_tests runs check apart from the candidate (exact types); 3: each sample alone (own
# namespaces and file system), argument identity kept and unencodable changes failing the call
HARNESS_REVISION = "3"


class SampleFormatError(KernelLifecycleError):
    """A sample cannot be scored as given (malformed line, missing field, bad test spec)."""


class Sample(BaseModel):
    """One program to judge. ``completion`` is what the model wrote; for compile scorers it
    is the whole program."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: str
    prompt: str = ""
    completion: str
    test: str = ""
    entry_point: str = ""


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    passed: bool
    result: str
    no_code: bool = False


class Scorer(ABC):
    """An arbiter: the scorer API a plugin implements (register the subclass under the
    ``kernel_lifecycle.scorers`` entry-point group, named as its ``name``).

    - ``name`` (class attribute): what ``skill.json`` and policies write; ``default_timeout``:
      seconds of wall clock one program may run when the caller gives no ``timeout``.
    - ``language`` and ``program`` (class attributes): how a chat base's answer is read back into
      what the scorer judges. ``language`` names the answer's code fence (``"sh"``; empty: none);
      ``program`` says whether ``completion`` alone is the whole program (True: a compiler or
      interpreter runs the answer by itself) or continues the probe's prompt (False, the default:
      ``prompt + completion`` is the program, as for a python function from its signature).
    - ``__init__(*, mode=None, limits=None)``: keep this signature (call ``super().__init__``);
      ``mode`` is the sandbox mode (None: ``KL_SANDBOX``), ``limits`` the per-program
      :class:`~kernel_lifecycle.boundary.sandbox.Limits`.
    - ``version() -> str``: everything that decides verdicts (tool versions, flags, limits:
      ``_limits_text()``). It goes into the harness hash: reports whose scorers' versions differ
      are never compared by a gate.
    - ``score(samples, *, workers=2, timeout=None) -> list[Verdict]``: one verdict per sample,
      in order, each with the sample's ``task_id``. Never raise for a bad program: a program that
      crashes, loops or attacks the harness is a failed verdict. Raise ``SampleFormatError`` for
      a sample that cannot be judged as given (a malformed ``test``).
    - What runs in the sandbox: every byte of a model's answer does. Build one
      :class:`~kernel_lifecycle.boundary.sandbox.Job` per sample (``exec``: ``argv`` run in a
      fresh work directory holding ``files``; ``python``: ``source`` run in a forked interpreter,
      a positive signal sent only if it ran to the end) and hand them to ``_run_code(samples,
      jobs, judge, workers)``, which runs them (each alone, under ``limits`` and its timeout)
      and calls ``judge(sample, outcome)`` for each. ``Outcome`` says ``timed_out``,
      ``exit_code``, ``term_signal``, ``output`` (stdout+stderr, capped).
    - The verdict: ``passed`` (a positive signal: the tool accepted it, the harness said so;
      never only "nothing went wrong"), ``result`` (one line a person reads: "passed",
      "timed out", "failed: <why>"), ``no_code``: the answer held nothing to judge (leave the
      sample out of ``jobs``: ``_run_code`` gives it ``passed=False, result="no code",
      no_code=True``). The report counts no-code answers apart from wrong ones.
    - A tool the scorer needs that is missing or broken is a ``ConfigurationError`` (one line:
      what to install), best found by a positive control (a known-good program, once).
    """

    name: ClassVar[str]
    default_timeout: ClassVar[float]
    language: ClassVar[str] = ""
    program: ClassVar[bool] = False

    def __init__(self, *, mode: str | None = None, limits: Limits | None = None) -> None:
        self.mode = mode  # None: from settings (KL_SANDBOX)
        self.limits = limits or Limits()

    @abstractmethod
    def version(self) -> str:
        """Everything that decides verdicts: tool versions, flags, harness revision, limits."""

    @abstractmethod
    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        ...

    def _run_code(self, samples: list[Sample], jobs: dict[int, Job], judge: Callable[[Sample, Outcome], Verdict],
                  workers: int) -> list[Verdict]:
        """Run ``jobs`` (sample index -> its program) in the sandbox and ``judge`` each outcome;
        a sample without a job held no code and gets the "no code" verdict."""
        outcomes = dict(zip(jobs, run_batch(list(jobs.values()), workers=workers, limits=self.limits,
                                            mode=self.mode)))
        return [judge(sample, outcomes[i]) if i in outcomes
                else Verdict(task_id=sample.task_id, passed=False, result="no code", no_code=True)
                for i, sample in enumerate(samples)]

    def _limits_text(self) -> str:
        lim = self.limits
        return (f"sandbox={resolve_mode(self.mode)} "
                f"cpu={lim.cpu_seconds}s as={lim.memory_bytes} nproc={lim.processes} "
                f"fsize={lim.file_bytes} nofile={lim.open_files} disk={lim.disk_bytes}")


def why_no_verdict(outcome: Outcome) -> str:
    """Why a program ended without a verdict: the signal that killed it, or its exit status."""
    import signal

    if outcome.term_signal is not None:
        try:
            name = signal.Signals(outcome.term_signal).name
        except ValueError:
            name = f"signal {outcome.term_signal}"
        return f"killed by {name}"
    return f"exited without a verdict (status {outcome.exit_code})"


def result_of(outcome: Outcome) -> str:
    """The verdict line of a program run under a harness: its signal ("passed", "failed: ..."),
    "timed out", "failed: clean-up did not finish" (its processes outlived the sandbox's
    kill: the verdict is withheld), or why it ended without one."""
    if outcome.timed_out:
        return "timed out"
    if outcome.stalled:
        return "failed: clean-up did not finish"
    if outcome.signal is not None:
        return outcome.signal
    return "failed: " + why_no_verdict(outcome)


def tool_verdict(sample: Sample, outcome: Outcome, *, accepted: str, refused: str) -> Verdict:
    """The verdict of a program judged by a tool's exit status (a compiler, a parser): passed with
    ``accepted`` on exit 0; "timed out"; ``refused: <why>`` with the tool's first error line, or
    why it ended without the tool's answer (a resource limit killed it)."""
    if outcome.timed_out:
        return Verdict(task_id=sample.task_id, passed=False, result="timed out")
    if outcome.exit_code == 0:
        return Verdict(task_id=sample.task_id, passed=True, result=accepted)
    if outcome.exit_code is None:  # killed (a resource limit), not the tool's answer
        return Verdict(task_id=sample.task_id, passed=False, result=f"{refused}: " + why_no_verdict(outcome))
    line = first_error_line(outcome.output) or f"exit status {outcome.exit_code}"
    return Verdict(task_id=sample.task_id, passed=False, result=f"{refused}: {line}")


def first_error_line(output: str) -> str:
    """The first line of a tool's output that mentions an error, else its first line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[0] if lines else ""


def harness_verdict(sample: Sample, outcome: Outcome) -> Verdict:
    """The verdict of a program run under a harness (``result_of``); ``no_code`` when the
    sample's completion was empty."""
    result = result_of(outcome)
    return Verdict(task_id=sample.task_id, passed=result == "passed", result=result,
                   no_code=not sample.completion.strip())


def json_objects(path: Path, error: type[KernelLifecycleError]) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a JSONL file (``.gz``: gzip-compressed).
    NotFoundError for a missing file; ``error`` naming file and line for a line that is not a
    JSON object."""
    import gzip
    import json

    if not path.is_file():
        raise NotFoundError(f"{path} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:  # type: ignore[operator]
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{lineno}: not a JSON object ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise error(f"{path}:{lineno}: not a JSON object")
            yield lineno, row


def read_samples(path: Path) -> list[Sample]:
    """Samples from a JSONL file in HumanEval's sample format (extra keys ignored).

    Errors name the file and line: NotFoundError for a missing file, SampleFormatError for a
    line that is not a JSON object or lacks ``task_id``/``completion``."""
    if not path.is_file():
        raise NotFoundError(f"samples file {path} not found")
    samples = []
    for lineno, row in json_objects(path, SampleFormatError):
        where = f"{path}:{lineno}"
        for key in ("task_id", "completion"):
            if key not in row:
                raise SampleFormatError(f"{where}: missing {key!r}")
        for key in ("task_id", "prompt", "completion", "test", "entry_point"):
            if key in row and not isinstance(row[key], str):
                raise SampleFormatError(f"{where}: {key!r} must be a string")
        samples.append(Sample.model_validate(row))
    return samples
