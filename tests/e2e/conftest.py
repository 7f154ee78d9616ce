"""The demo world, built once per test session by the real `kernel-lifecycle quickstart`."""

from __future__ import annotations

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
    home = tmp_path_factory.mktemp("quickstart") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KL_", "MLFLOW_"))}
    env.update({"KL_HOME": str(home), "COLUMNS": "160"})
    started = time.monotonic()
    proc = run_cli(["quickstart"], env, timeout=1500)
    seconds = time.monotonic() - started
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "quickstart.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return World(home=home, env=env, output=proc.stdout, seconds=seconds)
