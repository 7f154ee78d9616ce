"""The sandbox itself: limits that really hold, KL_SANDBOX=none, and a missing bubblewrap."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.sandbox import Job, Limits, check_sandbox, run_batch
from kernel_lifecycle.boundary.scorers import Sample, get_scorer
from kernel_lifecycle.errors import SandboxError
from kernel_lifecycle.settings import get_settings

FORK_UNTIL_REFUSED = """
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError:
    pass
print("forked", n)
"""


def test_rlimit_nproc_stops_a_fork_bomb_even_though_we_are_root() -> None:
    """As root RLIMIT_NPROC is not enforced; the per-program uid makes it hold."""
    limits = Limits(processes=24)
    started = time.monotonic()
    outcome = run_batch([Job("python", 5.0, source=FORK_UNTIL_REFUSED)], limits=limits, mode="bwrap")[0]
    assert outcome.signal == "passed", outcome
    # the program itself counts as one of its uid's processes
    assert outcome.output.strip() == f"forked {limits.processes - 1}"
    # the 23 sleepers (60 s) were killed when the program ended, not waited for
    assert time.monotonic() - started < 10


def test_address_space_limit_holds() -> None:
    # reserve 3 GiB of address space without touching it: RLIMIT_AS decides, not RAM or time
    grab = "import mmap\ntry:\n    mmap.mmap(-1, 3 << 30)\nexcept OSError:\n    print('refused')\n"
    small = run_batch([Job("python", 5.0, source=grab)], limits=Limits(memory_bytes=1 << 30), mode="bwrap")[0]
    large = run_batch([Job("python", 5.0, source=grab)], limits=Limits(memory_bytes=8 << 30), mode="bwrap")[0]
    assert small.signal == "passed" and small.output == "refused\n"
    assert large.signal == "passed" and large.output == ""


def test_deadline_kills_and_output_is_capped() -> None:
    jobs = [
        Job("python", 1.0, source="import time\nprint('start', flush=True)\ntime.sleep(30)"),
        Job("python", 5.0, source="import sys\nfor _ in range(200):\n    sys.stdout.write('y' * 10000)\n"),
    ]
    started = time.monotonic()
    slow, loud = run_batch(jobs, limits=Limits(output_bytes=1000), mode="bwrap")
    assert slow.timed_out and slow.signal is None and slow.output == "start\n"
    assert 0.9 < slow.seconds < 3
    assert loud.signal == "passed" and loud.output == "y" * 1000  # 2 MB written, 1000 bytes kept
    assert time.monotonic() - started < 10


def test_each_program_gets_its_own_uid_and_private_dir() -> None:
    probe = "import os\nprint(os.getuid(), os.getcwd(), oct(os.stat('.').st_mode & 0o777), sorted(os.environ))"
    a, b = run_batch([Job("python", 5.0, source=probe)] * 2, mode="bwrap")
    uid_a, cwd_a, mode_a, env_a = a.output.split(" ", 3)
    uid_b, cwd_b, _, _ = b.output.split(" ", 3)
    assert uid_a != uid_b and int(uid_a) >= 1_000_000 and cwd_a != cwd_b
    assert mode_a == "0o700"
    assert "HOME" in env_a and "KL_" not in env_a


@pytest.fixture
def sandbox_none(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KL_SANDBOX", "none")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_kl_sandbox_none_runs_with_rlimits_and_process_groups(sandbox_none: None) -> None:
    assert check_sandbox() == "none"
    prompt, test = "def add(a, b):\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    samples = [
        Sample(task_id="right", prompt=prompt, completion="    return a + b\n", test=test, entry_point="add"),
        Sample(task_id="wrong", prompt=prompt, completion="    return 0\n", test=test, entry_point="add"),
        Sample(task_id="exit0", prompt=prompt, completion="    return 0\nimport os\nos._exit(0)\n", test=test,
               entry_point="add"),
        Sample(task_id="loop", prompt=prompt, completion="    while True:\n        pass\n", test=test,
               entry_point="add"),
        Sample(task_id="memory", prompt=prompt, completion="    return len(bytearray(4 << 30))\n", test=test,
               entry_point="add"),
    ]
    started = time.monotonic()
    verdicts = [v.result for v in get_scorer("python_tests").score(samples, timeout=1.0)]
    assert verdicts == ["passed", "failed: AssertionError", "failed: candidate ended without answering",
                        "timed out", "failed: MemoryError"]
    assert time.monotonic() - started < 10


def test_missing_bwrap_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap
    with pytest.raises(SandboxError, match="install bubblewrap.*KL_SANDBOX=none"):
        check_sandbox("bwrap")
    with pytest.raises(SandboxError, match="bubblewrap"):
        get_scorer("python_tests", mode="bwrap").score(
            [Sample(task_id="t", completion="    return 1\n", prompt="def f():\n", test="def check(c): pass",
                    entry_point="f")]
        )


def test_bwrap_that_cannot_start_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bwrap"  # a bubblewrap that cannot create namespaces, as on a locked-down host
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(SandboxError, match="cannot start.*No permissions.*KL_SANDBOX=none"):
        check_sandbox("bwrap")


def test_string_hashing_is_reproducible_across_batches() -> None:
    """PYTHONHASHSEED is pinned: a set-order-dependent program gets the same verdict every run."""
    probe = Job("python", 5.0, source="print(list({'alpha', 'beta', 'gamma', 'delta'}), hash('abc'))")
    first = run_batch([probe], mode="bwrap")[0].output
    second = run_batch([probe], mode="bwrap")[0].output
    assert first == second and first


def test_sandbox_works_from_a_virtualenv_under_tmp(tmp_path: Path) -> None:
    """A virtualenv in /tmp (CI runners, throwaway envs) must not be hidden by the private /tmp.

    Regression: the tmpfs was mounted after the interpreter's binds and hid them, so every
    program failed with "execvp .../python3: No such file or directory".
    """
    import subprocess
    import venv

    assert str(tmp_path).startswith("/tmp/")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=False).create(env_dir)
    script = (
        "from kernel_lifecycle.boundary.sandbox import Job, run_batch\n"
        "print(run_batch([Job('python', 5.0, source='print(6*7)')], mode='bwrap')[0].output.strip())\n"
    )
    repo_root = Path(__file__).resolve().parents[2]
    # the project's dependencies from the environment running the tests (the base interpreter's
    # own site-packages may have none: Debian's python3 under CI): what is tested is the path
    site_packages = [p for p in sys.path if p.endswith("site-packages")]
    done = subprocess.run([str(env_dir / "bin" / "python"), "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=repo_root,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), *site_packages])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "42"


def test_a_hung_check_costs_its_harness_and_the_batch_goes_on() -> None:
    """A check that loops on the candidate's answers hangs the (warm, reused) harness: the
    deadline kills it with the candidate, and the next samples get a fresh harness."""
    prompt = "def zero():\n"
    looping = Sample(task_id="hang", prompt=prompt, completion="    return 0\n", entry_point="zero",
                     test="def check(candidate):\n    while candidate() != 1:\n        pass\n")
    normal = Sample(task_id="ok", prompt=prompt, completion="    return 0\n", entry_point="zero",
                    test="def check(candidate):\n    assert candidate() == 0\n")
    started = time.monotonic()
    verdicts = get_scorer("python_tests", mode="bwrap").score([looping, normal, normal, normal], workers=1,
                                                              timeout=1.0)
    assert [v.result for v in verdicts] == ["timed out", "passed", "passed", "passed"]
    assert time.monotonic() - started < 15


def test_a_candidate_closing_its_request_pipe_fails_itself_without_killing_the_harness() -> None:
    """The harness writes calls into the candidate's request pipe; a candidate that closed it
    makes that write fail (SIGPIPE is ignored in the harness): "ended without answering"."""
    prompt = "def same(x):\n"
    closer = Sample(task_id="closer", prompt=prompt, entry_point="same",
                    completion="    return x\nimport os\nos.close(3)\n",
                    test="def check(candidate):\n    import time\n    time.sleep(0.3)\n    assert candidate(1) == 1\n")
    normal = Sample(task_id="ok", prompt=prompt, completion="    return x\n", entry_point="same",
                    test="def check(candidate):\n    assert candidate(1) == 1\n")
    verdicts = get_scorer("python_tests", mode="bwrap").score([closer, normal], workers=1, timeout=5.0)
    assert [v.result for v in verdicts] == ["failed: candidate ended without answering", "passed"]
