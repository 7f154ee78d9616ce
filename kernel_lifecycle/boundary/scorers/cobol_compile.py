"""``cobol_compile``: GnuCOBOL's ``cobc`` is the arbiter; a program passes when it compiles.

Pinned dialect and format: ``cobc -fsyntax-only -free -std=default``. Free format because
generated programs rarely respect fixed format's columns (sequence area, indicator in column
7, area A/B), and a compile-rate curve should measure COBOL, not column counting. Syntax
only (parse + type checks, no C compiler) keeps a check at ~20 ms. cobc runs in the sandbox
like any untrusted program: the source is the model's output.

A known-good program is compiled once per scorer instance as a positive control: if it
fails, cobc (or the sandbox) is broken and every "did not compile" would be a lie.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from kernel_lifecycle.boundary.sandbox import Job, Outcome, run_batch
from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    Scorer,
    Verdict,
    first_error_line,
    tool_verdict,
)
from kernel_lifecycle.errors import ConfigurationError

COBC_FLAGS = ("-fsyntax-only", "-free", "-std=default")
SOURCE_NAME = "prog.cob"

POSITIVE_CONTROL = """IDENTIFICATION DIVISION.
PROGRAM-ID. CONTROL.
DATA DIVISION.
WORKING-STORAGE SECTION.
01 WS-COUNT PIC 9(3) VALUE 0.
PROCEDURE DIVISION.
    PERFORM VARYING WS-COUNT FROM 1 BY 1 UNTIL WS-COUNT > 3
        DISPLAY "COUNT " WS-COUNT
    END-PERFORM.
    STOP RUN.
"""

# anything a COBOL program must contain; text without it is "no code", not a compile error
_LOOKS_LIKE_COBOL = re.compile(r"\b(PROGRAM-ID|DIVISION)\b", re.IGNORECASE)


def looks_like_cobol(text: str) -> bool:
    return bool(text.strip()) and bool(_LOOKS_LIKE_COBOL.search(text))


class CobolCompileScorer(Scorer):
    name = "cobol_compile"
    language = "cobol"
    program = True
    default_timeout = 10.0

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self._control_ok = False

    def _cobc(self) -> str:
        cobc = shutil.which("cobc")
        if cobc is None:
            raise ConfigurationError("GnuCOBOL's cobc is not on PATH: install gnucobol (apt-get install gnucobol)")
        return cobc

    def version(self) -> str:
        done = subprocess.run([self._cobc(), "--version"], capture_output=True, text=True, timeout=30)
        first = done.stdout.splitlines()[0] if done.stdout else "cobc (unknown version)"
        return f"cobol_compile r{HARNESS_REVISION}; {first}; {' '.join(COBC_FLAGS)}; {self._limits_text()}"

    def _job(self, source: str, timeout: float) -> Job:
        return Job("exec", timeout, argv=(self._cobc(), *COBC_FLAGS, SOURCE_NAME), files={SOURCE_NAME: source})

    def positive_control(self) -> None:
        """Compile the known-good program; raise ConfigurationError if that fails."""
        if self._control_ok:
            return
        outcome = run_batch([self._job(POSITIVE_CONTROL, self.default_timeout)], workers=1,
                            limits=self.limits, mode=self.mode)[0]
        if outcome.timed_out or outcome.exit_code != 0:
            detail = first_error_line(outcome.output) or f"exit status {outcome.exit_code}"
            raise ConfigurationError(
                f"cobc failed the positive control (a known-good program did not compile: {detail}); "
                "cobc or the sandbox is broken, so no COBOL verdict can be trusted"
            )
        self._control_ok = True

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        timeout = self.default_timeout if timeout is None else timeout
        self.positive_control()
        jobs = {i: self._job(s.completion, timeout) for i, s in enumerate(samples) if looks_like_cobol(s.completion)}
        return self._run_code(samples, jobs, self._verdict, workers)

    @staticmethod
    def _verdict(sample: Sample, outcome: Outcome) -> Verdict:
        return tool_verdict(sample, outcome, accepted="compiled", refused="did not compile")
