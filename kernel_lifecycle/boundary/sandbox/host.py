"""The host side of the sandbox: the bubblewrap command line, the mode, and one batch's run.

Who runs it: the scorers, in the host process (or a Ray worker). ``run_batch`` starts ONE
runner (``runner.py``, run as a script) per batch: inside bubblewrap (``_bwrap_argv``: every
namespace but the user one, a read-only system, a private /tmp, no home, no /work, no repo,
only ``runner.py`` and ``calls.py`` bound in at ``/kl``), or with ``KL_SANDBOX=none`` on the
host in a temporary directory. It sends the jobs on the runner's stdin, bounds the whole
batch with a watchdog that kills the runner's process group, and reads one result line per
job back. Which uid runs what, and the clean-up of each program's processes, happen inside,
in the runner.

``Limits``, ``Job`` and ``Outcome`` are what callers build and get back; the runner only ever
sees them as JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field

from kernel_lifecycle.boundary.sandbox import runner
from kernel_lifecycle.errors import SandboxError
from kernel_lifecycle.settings import get_settings


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits. Defaults suit HumanEval-sized programs and cobc."""

    cpu_seconds: int = 10  # RLIMIT_CPU backstop; the wall-clock deadline usually acts first
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    processes: int = 64  # RLIMIT_NPROC for the program's own uid (threads count too)
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 64 << 10  # captured stdout+stderr; the rest is read and dropped
    disk_bytes: int = 64 << 20  # the program's own file system (a tmpfs: its work directory), bwrap mode


@dataclass(frozen=True)
class Job:
    """One program. ``python``: ``source`` runs in a fresh interpreter state (forked) and a
    positive signal is sent only if it ran to the end. ``exec``: ``argv`` is executed in the
    work directory after ``files`` are written there. ``check``: the split harness of
    ``calls``; ``check`` holds ``candidate`` (untrusted source, run in its own
    process), ``entry_point``, and ``prompt`` + ``test`` (run by the trusted harness, which
    calls ``check(candidate)`` and alone sends the signal)."""

    kind: str  # "python" | "exec" | "check"
    timeout: float
    source: str = ""
    argv: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    check: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What happened to one job.

    ``signal`` is the harness's own verdict line ("passed" or "failed: <ExcType>") and is
    set only when it came with the batch's secret nonce on the private channel and the
    program's process exited by itself with status 0. ``timed_out`` means the wall-clock
    deadline killed it. ``exit_code``/``term_signal`` describe the direct child.
    ``stalled``: some process of the program outlived the clean-up's grace after being
    killed; its verdict is withheld (``signal`` None), and no other program's is touched.
    """

    signal: str | None
    timed_out: bool
    exit_code: int | None
    term_signal: int | None
    output: str
    seconds: float
    stalled: bool = False


# where the runner and the split harness's protocol sit, on the host and in the sandbox
_RUNNER_FILE = os.path.abspath(runner.__file__)
_CALLS_FILE = os.path.join(os.path.dirname(_RUNNER_FILE), runner.CALLS_FILE)
_RUNNER_IN_SANDBOX = "/kl/runner.py"  # "runner.py": what the hostile corpus looks for in /proc
_CALLS_IN_SANDBOX = os.path.join(os.path.dirname(_RUNNER_IN_SANDBOX), runner.CALLS_FILE)
_PROBE_CACHE: dict[str, str] = {}
# seconds a program's processes have to be gone once the runner killed them; a program still
# there after that fails alone ("stalled"). A setting of the runner; tests lower it.
CLEANUP_GRACE = 2.0


def resolve_mode(mode: str | None) -> str:
    """The sandbox mode in effect: ``mode`` if given, else ``KL_SANDBOX`` (default bwrap)."""
    if mode is None:
        mode = get_settings().sandbox
    if mode not in {"bwrap", "none"}:
        raise SandboxError(f"unknown sandbox mode {mode!r}; use 'bwrap' or 'none' (KL_SANDBOX)")
    return mode


class _Binds:
    """Read-only binds whose missing parent directories are created 0755 first: bwrap
    would make them 0700 (root's), and the programs' own uids could not traverse them."""

    def __init__(self) -> None:
        self.argv: list[str] = []
        self.made: set[str] = {"/"}

    def ro(self, src: str, dest: str | None = None) -> None:
        dest = dest or src
        parts = dest.strip("/").split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/" + "/".join(parts[:depth])
            if parent not in self.made:
                self.argv += ["--perms", "0755", "--dir", parent]
                self.made.add(parent)
        self.argv += ["--ro-bind", src, dest]
        self.made.add(dest)


def _bwrap_argv(bwrap: str, tmp_bytes: int) -> list[str]:
    argv = [
        bwrap,
        # every namespace but the user one: in a user namespace every uid would map to root
        # and RLIMIT_NPROC would not hold (see the package's docstring)
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session",
        # the runner's: SETUID/SETGID to give each program its uid, SYS_ADMIN for each
        # program's own namespaces and tmpfs (``runner._own_world``) and /proc's hidepid,
        # KILL to clean up any uid's processes; a program drops all of them with its setuid
        "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
        "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_KILL",
        "--hostname", "sandbox",
        # the private /tmp first: binds made after it may sit under /tmp (a virtualenv in
        # /tmp/venv); made before it, the tmpfs would hide them
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(tmp_bytes), "--perms", "0755", "--tmpfs", "/tmp",
    ]
    binds = _Binds()
    binds.made.update({"/proc", "/dev", "/tmp"})
    binds.ro("/usr")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            binds.ro(path)
    # a minimal /etc: the dynamic loader's cache and GnuCOBOL's configuration only
    for path in ("/etc/ld.so.cache", "/etc/gnucobol", "/etc/localtime"):
        if os.path.exists(path):
            binds.ro(path)
    # the Python install the runner uses, read-only at the same path (pyenv lives in /root:
    # only that one directory appears, the rest of /root stays absent)
    for root in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        if root != "/usr" and not root.startswith("/usr/"):
            binds.ro(root)
    binds.ro(_RUNNER_FILE, _RUNNER_IN_SANDBOX)
    binds.ro(_CALLS_FILE, _CALLS_IN_SANDBOX)
    argv += binds.argv
    argv += [
        "--clearenv",
        "--setenv", "PATH", runner.SANDBOX_PATH,
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONHASHSEED", "0",
        "--chdir", "/tmp",
    ]
    return argv


def check_sandbox(mode: str | None = None) -> str:
    """Return the mode in effect, or raise SandboxError if bwrap is missing or cannot start."""
    mode = resolve_mode(mode)
    if mode == "none":
        return mode
    weaker = "or set KL_SANDBOX=none to accept weaker isolation"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(f"bubblewrap (bwrap) is not on PATH: install bubblewrap (apt-get install bubblewrap) {weaker}")
    # bwrap is there but may not be allowed to make namespaces (containers, hardened kernels)
    hint = f"run as root or allow unprivileged user namespaces for bwrap, {weaker}"
    if _PROBE_CACHE.get(bwrap) != "ok":
        probe = _bwrap_argv(bwrap, 1 << 20) + ["--", os.path.realpath(sys.executable), *runner.PYTHON_FLAGS,
                                               "-c", "pass"]
        try:
            done = subprocess.run(probe, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxError(f"bubblewrap cannot start ({exc}): {hint}") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {done.returncode}"
            raise SandboxError(f"bubblewrap cannot start a sandbox ({reason}): {hint}")
        _PROBE_CACHE[bwrap] = "ok"
    return mode


def run_batch(jobs: list[Job], *, workers: int = 2, limits: Limits | None = None,
              mode: str | None = None, straggler_after: float = 0.5) -> list[Outcome]:
    """Run ``jobs`` isolated, ``workers`` at a time; outcomes in the jobs' order.

    A job running longer than ``straggler_after`` seconds frees its slot for the next one
    (at most ``workers`` such stragglers, so never more than 2 x workers at once)."""
    if not jobs:
        return []
    limits = limits or Limits()
    mode = check_sandbox(mode)
    host_tmp = None
    if mode == "bwrap":
        bwrap = shutil.which("bwrap")
        assert bwrap is not None  # checked by check_sandbox
        workroot = "/tmp/w"
        argv = _bwrap_argv(bwrap, 256 << 20) + ["--", os.path.realpath(sys.executable), *runner.PYTHON_FLAGS,
                                                 _RUNNER_IN_SANDBOX]
        env = None
        cwd = None
    else:
        host_tmp = tempfile.mkdtemp(prefix="kl-sandbox-")
        workroot = os.path.join(host_tmp, "w")
        argv = [os.path.realpath(sys.executable), *runner.PYTHON_FLAGS, _RUNNER_FILE]
        env = {"PATH": os.environ.get("PATH", runner.SANDBOX_PATH), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cwd = host_tmp
    header = {
        "mode": mode,
        "workers": workers,
        "straggler_after": straggler_after,
        "limits": asdict(limits),
        "workroot": workroot,
        # fresh uids nobody on the host uses; one per job so RLIMIT_NPROC and kill(-1) are per job
        "uid_base": 1_000_000 + secrets.randbelow(1 << 30),
        "cleanup_grace": CLEANUP_GRACE,
        "env": {"PATH": runner.SANDBOX_PATH if mode == "bwrap" else env["PATH"]},  # type: ignore[index]
    }
    payload = [json.dumps(header)]
    for job in jobs:
        payload.append(json.dumps({"kind": job.kind, "timeout": job.timeout, "source": job.source,
                                   "argv": list(job.argv), "files": job.files, "check": job.check}))
    data = ("\n".join(payload) + "\n").encode("utf-8")
    # watchdog for the whole batch: every job's deadline, run `workers` at a time, plus slack
    # (a clean-up never holds a worker slot: it ends within its grace beside the next jobs)
    budget = sum(job.timeout + 1.0 for job in jobs) / max(1, workers) + 30.0 + CLEANUP_GRACE
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(data, timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SandboxError(f"the sandbox did not finish {len(jobs)} programs within {budget:.0f} s; killed")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if host_tmp is not None:
            shutil.rmtree(host_tmp, ignore_errors=True)
    results: dict[int, Outcome] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        row = json.loads(line)
        index = row.pop("i")
        results[index] = Outcome(**row)
    if len(results) != len(jobs):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SandboxError(
            f"the sandbox runner stopped after {len(results)} of {len(jobs)} programs "
            f"(exit status {proc.returncode}): {' | '.join(tail)}"
        )
    return [results[i] for i in range(len(jobs))]
