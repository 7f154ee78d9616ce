"""Each sample alone (issue 25): nothing crosses between the samples of one batch.

Every test here puts a sample that plants something (an IPC object, a socket, a process, a
file, a full disk) or attacks the clean-up in one batch with a sample that would profit from
it, through the real bubblewrap sandbox, and checks that the second one's verdict is what it
would be alone. The programs are the corpus's (tests/boundary/hostile/, README there).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.sandbox import Job, host, run_batch
from kernel_lifecycle.boundary.scorers import Sample, get_scorer

HOSTILE = Path(__file__).parent / "hostile"
PROMPT = "def add(a, b):\n"
ONE_ASSERT = "def check(candidate):\n    assert candidate(2, 3) == 5\n    return\n"
TWO_ASSERTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(1, 1) == 2\n"
CHANNELS = ["sysv_shm", "sysv_msg", "sysv_sem", "mqueue", "abstract_socket", "tcp_loopback", "netlink",
            "proc_comm", "pid_probe", "devpts", "shared_file", "disk_fill"]


def _sample(name: str, test: str = ONE_ASSERT, completion: str | None = None) -> Sample:
    text = completion if completion is not None else (HOSTILE / f"{name}.py").read_text()
    return Sample(task_id=name, prompt=PROMPT, completion=text, test=test, entry_point="add")


def _score(samples: list[Sample], *, workers: int = 2, timeout: float = 3.0) -> list[str]:
    return [v.result for v in get_scorer("python_tests", mode="bwrap").score(samples, workers=workers,
                                                                              timeout=timeout)]


@pytest.mark.parametrize("channel", CHANNELS)
def test_what_one_sample_plants_another_does_not_find(channel: str) -> None:
    """Planter and reader run at the same time (two workers): the reader returns the right
    answer only if it found what the planter left (a SysV object, a queue, a socket, a
    netlink port, a process name or pid, a pseudo-terminal, a file, a full disk)."""
    planter, reader = _score([_sample(f"cross_{channel}_plant"), _sample(f"cross_{channel}_read")])
    assert planter == "failed: AssertionError"
    assert reader == "failed: AssertionError", f"{channel}: the reader found what the planter left"


def test_a_repeated_wrong_completion_never_learns_to_pass() -> None:
    """pass@k: the same learner four times in a row, against a test whose two asserts are
    planned. It guesses, watches for the harness hanging up on its guess, and writes what it
    learnt down for the next copy: each copy fails as the first one did."""
    results = _score([_sample("cross_oracle_learner", TWO_ASSERTS)] * 4, workers=1)
    assert results == ["failed: AssertionError"] * 4


WATCHER = """
    import fcntl, select, struct, termios
    if (a, b) == (2, 3):
        return 0  # wrong: the check fails at its first assert
    __import__("sys").stdout.write("watching\\n")  # one write: print's two (text, then end) can be cut between
    poller = select.poll()
    poller.register(3, select.POLLIN)  # the request pipe: readable at its end
    end = __import__("time").monotonic() + 2.0
    while __import__("time").monotonic() < end:
        if poller.poll(5):
            print("closed", flush=True)
            break
        unread = struct.unpack("i", fcntl.ioctl(4, termios.FIONREAD, b"\\0\\0\\0\\0"))[0]
        if unread:  # the answer to add(2, 3) left in the pipe: the harness stopped reading
            print("unread", unread, flush=True)
            break
    return 2
"""


def test_a_candidate_sees_no_sign_of_its_verdict_before_it_dies() -> None:
    """Its first answer is wrong; during the second planned call it watches its pipes and
    prints what it sees: the request pipe closing, or its first answer left unread. The
    harness reads every byte as it comes and closes nothing until the runner has killed
    the candidate, so it sees neither."""
    outcome = run_batch([Job("check", 5.0, check={"candidate": PROMPT + WATCHER, "prompt": PROMPT,
                                                  "entry_point": "add", "test": TWO_ASSERTS})], mode="bwrap")[0]
    assert outcome.signal == "failed: AssertionError"
    assert outcome.output in ("", "watching\n"), outcome.output
    assert outcome.seconds < 1.5  # killed at the verdict, not at the end of its 2 s watch


def test_a_daemon_that_kills_its_own_clean_up_dies_and_serves_no_one() -> None:
    """A daemon of the sample's uid kills every process of that uid it can (a clean-up
    running as that uid among them) and serves the answer on an abstract socket; the next
    samples in line (one worker) must not get it, and an honest one still passes."""
    results = _score([_sample("cross_survivor_plant"), _sample("cross_abstract_socket_read"),
                      _sample("honest", completion="    return a + b\n")], workers=1)
    # the daemon's kill(-1) reaches neither the runner nor, in the sample's own PID namespace,
    # the candidate (its pid 1): the candidate answers its 0
    assert results == ["failed: AssertionError", "failed: AssertionError", "passed"]


def test_a_sample_attacking_its_clean_up_fails_alone() -> None:
    """Forty processes signalling everything they may (SIGTSTP, SIGTERM), and tens of
    thousands of files: the clean-up is the runner's (root: no sample can signal it, and it
    deletes no file, the sample's tmpfs goes with it), so the batch goes on and every
    honest sample keeps its verdict."""
    honest = [_sample(f"honest{i}", completion="    import time\n    time.sleep(0.1)\n    return a + b\n")
              for i in range(6)]
    samples = [_sample("stall_cleanup_signals"), *honest[:3], _sample("stall_cleanup_files"), *honest[3:]]
    started = time.monotonic()
    results = _score(samples, workers=2, timeout=3.0)
    assert results == ["failed: AssertionError", "passed", "passed", "passed",
                       "failed: AssertionError", "passed", "passed", "passed"]
    assert time.monotonic() - started < 15


PROBE_WORLD = """
import os, socket
report = {}
report["uid"] = os.getuid()
report["pid"] = os.getpid()
report["pids_seen"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
report["home_is_own_fs"] = os.stat(os.environ["HOME"]).st_dev != os.stat("/tmp").st_dev
report["home_free_mb"] = os.statvfs(os.environ["HOME"]).f_blocks * os.statvfs(os.environ["HOME"]).f_frsize >> 20
report["ipc_ns"] = os.readlink("/proc/self/ns/ipc")
report["net_ns"] = os.readlink("/proc/self/ns/net")
report["pts"] = os.path.ismount("/dev/pts")
report["caps"] = {line.split(":")[0]: int(line.split()[1], 16) for line in open("/proc/self/status")
                  if line.startswith("Cap")}
print(repr(report))
"""


def test_each_program_has_its_own_namespaces_file_system_and_no_capability() -> None:
    """python jobs, two at a time: own IPC and network namespaces, own PID namespace (it is
    pid 1 there and sees no other process), own tmpfs as HOME (sized by ``disk_bytes``), no
    /dev/pts, and not one capability left."""
    import ast

    first, second = [ast.literal_eval(o.output) for o in run_batch([Job("python", 5.0, source=PROBE_WORLD)] * 2,
                                                                    mode="bwrap")]
    assert first["uid"] != second["uid"]
    assert first["ipc_ns"] != second["ipc_ns"] and first["net_ns"] != second["net_ns"]
    assert first["pid"] == second["pid"] == 1
    for report in (first, second):
        # /proc (the sandbox's) lists the program's own process only: hidepid
        assert len(report["pids_seen"]) == 1, report["pids_seen"]
        assert report["home_is_own_fs"] and report["home_free_mb"] == 64
        assert not report["pts"]
        caps = report["caps"]
        assert caps["CapInh"] == caps["CapPrm"] == caps["CapEff"] == caps["CapAmb"] == 0, caps


LEADER_EXITS_THREAD_LINGERS = """
import ctypes, os, platform, threading, time
closed = threading.Event()
def linger():
    ctypes.CDLL(None).prctl(15, b"__NAME__", 0, 0, 0)  # PR_SET_NAME: this thread, seen from the host
    time.sleep(0.5)  # long enough for the host to see it
    for fd in (1, 2, 3, 4):  # output and the harness's pipes: the job looks finished
        os.close(fd)
    closed.set()
    while True:
        time.sleep(0.05)
threading.Thread(target=linger).start()
closed.wait()
# only the main thread ends (exit, not exit_group): the process is a zombie leader whose
# other thread still runs
ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}[platform.machine()], 0)
def f(x):
    return x
"""


def _threads_named(name: str) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() == name:
                    count += 1
        except OSError:
            continue
    return count


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="raw exit syscall number")
def test_a_zombie_leader_with_a_live_thread_is_killed_while_the_batch_goes_on() -> None:
    """A job is over only when none of its processes can run: a candidate whose main thread
    ended while another thread runs on looks like a zombie, and is still killed. Watched
    from the host (a sample sees no other's processes): the lingering thread must be gone
    well before the batch ends (the job after it sleeps 1.5 s)."""
    name = "kl" + uuid.uuid4().hex[:12]
    check = {"candidate": LEADER_EXITS_THREAD_LINGERS.replace("__NAME__", name), "prompt": "", "entry_point": "f",
             "test": "def check(candidate):\n    assert candidate(1) == 1\n"}
    jobs = [Job("check", 5.0, check=check), Job("python", 5.0, source="import time\ntime.sleep(1.5)\n")]
    outcomes: list[object] = []
    batch = threading.Thread(target=lambda: outcomes.extend(run_batch(jobs, workers=1, mode="bwrap")))
    batch.start()
    seen = gone = None
    while batch.is_alive():
        alive = _threads_named(name)
        now = time.monotonic()
        if alive and seen is None:
            seen = now
        if seen is not None and not alive and gone is None:
            gone = now
        time.sleep(0.01)
    ended = time.monotonic()
    batch.join()
    hostile = outcomes[0]
    assert hostile.signal == "failed: candidate ended without answering", hostile  # type: ignore[attr-defined]
    assert seen is not None, "the lingering thread never showed"
    assert gone is not None and gone < ended - 0.7, (seen, gone, ended)


def test_a_program_outliving_its_clean_up_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's SIGKILL cannot be refused, so no sample makes this happen; with no grace
    at all, a candidate still alive when its verdict came in (as every candidate is: it waits
    for the next call) has not yet gone when the grace ends. Its verdict is withheld, and the
    programs beside it keep theirs."""
    monkeypatch.setattr(host, "CLEANUP_GRACE", 0.0)
    check = {"candidate": "def f(x):\n    return x\n", "prompt": "def f(x):\n", "entry_point": "f",
             "test": "def check(candidate):\n    assert candidate(1) == 1\n"}
    quick = Job("python", 5.0, source="print('ok')")
    outcomes = run_batch([quick, Job("check", 5.0, check=check), quick, quick], workers=1, mode="bwrap")
    assert [(o.signal, o.stalled) for o in outcomes] == [("passed", False), (None, True), ("passed", False),
                                                         ("passed", False)]
    verdict = get_scorer("python_tests", mode="bwrap").score(
        [Sample(task_id="t", prompt="def f(x):\n", completion="    return x\n", entry_point="f", test=check["test"])]
    )[0]
    assert verdict.result == "failed: clean-up did not finish"
