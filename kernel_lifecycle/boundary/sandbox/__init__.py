"""Run untrusted programs in isolation: one bubblewrap sandbox per batch, one process per program.

Why a batch shares one sandbox: starting bwrap and a Python interpreter costs tens of
milliseconds; forking a warm runner costs about one. So ``run_batch`` starts ONE bwrap
sandbox (no network, read-only system, private /tmp, cleaned environment, no home, no
/work, no repo) holding a small trusted *runner* (``runner.py``, run as a script: hence
only the standard library there). The runner forks one child per program, and
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
When a program ends or its wall-clock deadline passes and any process of the sample's uid
can still run (``runner._alive_uids``: not a zombie, not already exiting, or a zombie
leader with live threads), a helper forked with that uid kills every process of it
(``kill(-1, SIGKILL)`` until none is left, which also gets processes that left the process
group); then the work directory goes. The host side bounds the whole batch with a watchdog
that kills bwrap's process group; ``--die-with-parent`` and the PID namespace take
everything inside down with it.

``check`` jobs (``python_tests``) split a sample in two so that the test never shares a
process with generated code (``calls`` has the protocol):

- the *candidate* (``prompt + completion``) runs in a process forked, and isolated as above
  (its own uid, rlimits, directory), by a *zygote*: a fresh ``exec`` of the runner script
  started once per batch that never holds a test, a nonce or another sample's source, so no
  ``gc`` walk or /proc/self/mem scan of the candidate can find them;
- the *harness* (``prompt + test`` and ``check``) runs in one of a small pool of warm
  harness processes forked from the runner, each with a uid of its own, so the candidate
  cannot signal, ptrace or open the harness's fds or memory. Only trusted code runs there,
  which is why reusing them across samples is sound, and cheap: per sample the only fork is
  the zygote's, of a small process. A harness whose check hangs is killed at the deadline
  with the candidate and replaced. The harness alone writes the verdict.

``KL_SANDBOX=none`` is the explicit, weaker mode for machines without bubblewrap: the same
runner on the host with rlimits, a process group per program (killed with ``killpg``) and a
temporary directory; no namespaces and no uid switch, so a program can read what the user
can read, and RLIMIT_NPROC does not hold for root. There the candidate and the harness
share a uid: the split still keeps the test out of the candidate's memory and the verdict
channel out of its fds, but a candidate able to ptrace or signal processes of its own uid
could reach the harness.

Residual risks (bwrap mode): samples of one batch share the sandbox's loopback network and
IPC namespace (not the host's), and a sample can see the others' command lines in /proc.
``python`` jobs (``sql_exec``, whose only untrusted part is a query) still run program and
harness in one process.

Modules, and who runs them:

- ``host`` (the host process: scorers, a Ray worker): ``Limits``, ``Job``, ``Outcome``, the
  mode (``resolve_mode``, ``check_sandbox``), the bubblewrap command line, and ``run_batch``
  with its watchdog. The only module here that imports the project.
- ``runner`` (inside the sandbox, run as a script; on the host only with ``KL_SANDBOX=none``):
  the batch loop, the isolation of every forked child, the warm harnesses, the candidate
  zygote, the per-uid sweep. Standard library only.
- ``calls`` (inside the sandbox, loaded by ``runner`` by file path, in the harness and the
  candidate alike): the split harness's protocol, plain-data codec and call plan. Standard
  library only.
"""

from __future__ import annotations

from kernel_lifecycle.boundary.sandbox.host import Job, Limits, Outcome, check_sandbox, resolve_mode, run_batch

__all__ = ["Job", "Limits", "Outcome", "check_sandbox", "resolve_mode", "run_batch"]
