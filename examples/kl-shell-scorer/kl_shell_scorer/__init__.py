"""``shell_syntax``: a shell script passes when both ``bash -n`` and ``dash -n`` (POSIX sh)
accept it. An example of a kernel-lifecycle scorer plugin (see the project's README, "Your own
skills", and the ``Scorer`` docstring in ``kernel_lifecycle/boundary/scorers/base.py``).

- The model's answer (``completion``) is the whole script. It is untrusted, so even the
  parsers run in the sandbox (``exec`` jobs: argv run in a fresh work directory holding the
  script), as every program does.
- An answer with no command at all (empty, or only comments) is "no code", not a failure.
- A positive control (a known-good script must pass) and a negative one (a broken script must
  fail) run once per scorer: a missing or broken shell is a ConfigurationError, never a
  column of false verdicts.
- What it measures: the script parses, not what it does. A syntax check passes any sequence
  of words; use it for a skill whose forgetting (the model stops writing shell at all) is
  what matters, or write a scorer that runs tests.
"""

from __future__ import annotations

import shutil
import subprocess

from kernel_lifecycle.boundary.sandbox import Job, Outcome, run_batch
from kernel_lifecycle.boundary.scorers import Sample, Scorer, Verdict
from kernel_lifecycle.boundary.scorers.base import tool_verdict
from kernel_lifecycle.errors import ConfigurationError

__all__ = ["ShellSyntaxScorer"]

REVISION = "1"  # bump when what decides a verdict changes: it is part of version()
SCRIPT = "script.sh"
SHELLS = ("bash", "dash")
GOOD = 'for i in 1 2 3; do\n  echo "line $i"\ndone\n'
BROKEN = "if [ -f x ]; then\n  echo yes\n"  # no fi


def has_command(text: str) -> bool:
    """Whether a script holds anything but blank lines and comments."""
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


class ShellSyntaxScorer(Scorer):
    name = "shell_syntax"
    language = "sh"  # a chat model's answer arrives in a ```sh block
    program = True  # the answer alone is the script
    default_timeout = 5.0

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self._controls_ok = False

    def _shells(self) -> dict[str, str]:
        found = {name: shutil.which(name) for name in SHELLS}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise ConfigurationError(f"shell_syntax needs {' and '.join(missing)} on PATH (apt-get install {' '.join(missing)})")
        return found  # type: ignore[return-value]

    def version(self) -> str:
        bash = subprocess.run([self._shells()["bash"], "--version"], capture_output=True, text=True, timeout=30)
        first = (bash.stdout.splitlines() or ["bash (unknown version)"])[0]
        return f"shell_syntax r{REVISION}; {first}; dash -n; {self._limits_text()}"

    def _job(self, script: str, timeout: float) -> Job:
        shells = self._shells()
        # one program: bash -n, then dash -n; exit 0 only when both parse it
        check = f'{shells["bash"]} -n {SCRIPT} && {shells["dash"]} -n {SCRIPT}'
        return Job("exec", timeout, argv=(shells["bash"], "-c", check), files={SCRIPT: script})

    def controls(self) -> None:
        """The known-good script must pass and the broken one fail, once per scorer."""
        if self._controls_ok:
            return
        good, broken = run_batch([self._job(GOOD, self.default_timeout), self._job(BROKEN, self.default_timeout)],
                                 workers=1, limits=self.limits, mode=self.mode)
        if good.exit_code != 0 or broken.exit_code in (0, None):
            raise ConfigurationError(
                f"shell_syntax's controls failed (good script exit {good.exit_code}, broken script exit "
                f"{broken.exit_code}): the shells or the sandbox are broken, so no verdict can be trusted"
            )
        self._controls_ok = True

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        timeout = self.default_timeout if timeout is None else timeout
        self.controls()
        jobs = {i: self._job(s.completion, timeout) for i, s in enumerate(samples) if has_command(s.completion)}
        return self._run_code(samples, jobs, self._verdict, workers)

    @staticmethod
    def _verdict(sample: Sample, outcome: Outcome) -> Verdict:
        # the tool's exit status decides: passed on 0, else its first error line
        return tool_verdict(sample, outcome, accepted="parsed", refused="did not parse")
