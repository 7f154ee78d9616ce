"""The demo world, built once per test session by the real `kernel-lifecycle quickstart`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@dataclass
class World:
    home: Path
    env: dict[str, str]
    output: str
    seconds: float


def run_cli(args: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kernel_lifecycle.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def quickstart_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Built once per test run, whatever the number of xdist workers: the first worker to take
    the lock runs the cold quickstart, the others wait and reuse it (pytest-xdist's
    ``xdist_group`` is not honoured by every pytest/xdist pair, and two cold quickstarts at once
    on 2 cores doubled the heaviest phase of the suite). A failed build is recorded, not retried."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this run
    home = root / "quickstart-world" / "home"
    record = root / "quickstart-world" / "world.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KL_", "MLFLOW_"))}
    env.update({"KL_HOME": str(home), "COLUMNS": "160"})
    with FileLock(str(root / "quickstart-world.lock")):
        if not record.exists():
            home.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            proc = run_cli(["quickstart"], env, timeout=1500)
            seconds = time.monotonic() - started
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "quickstart.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
            record.write_text(json.dumps({"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-3000:], "seconds": seconds}))
        built = json.loads(record.read_text())
    assert built["returncode"] == 0, built["stderr"]
    return World(home=home, env=env, output=built["stdout"], seconds=built["seconds"])
