"""What users get is the wheel: build it, install it non-editable into a fresh environment, and
run the CLI from an empty directory (migrations and the demo policy come from package data)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "kernel_lifecycle").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk - listed == set(), "add these packages to [tool.setuptools].packages in pyproject.toml"


@pytest.mark.slow
def test_installed_wheel_migrates_and_validates_from_an_empty_directory(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        check=True, capture_output=True, timeout=600,
    )
    (wheel,) = wheels.glob("kernel_lifecycle-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    # the dependencies come from this interpreter's site-packages, added as a plain path entry:
    # a .pth *line* does not process the .pth files there, so this checkout's editable hook stays out
    own_site = next(Path(p) for p in site.getsitepackages() if Path(p).name == "site-packages")
    (env_site,) = (env_dir / "lib").glob("python3*/site-packages")
    (env_site / "zz_deps.pth").write_text(f"{own_site}\n")

    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KL_", "MLFLOW_", "PYTHONPATH"))}
    env["KL_HOME"] = str(tmp_path / "home")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(env_dir / "bin" / "kernel-lifecycle"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = subprocess.run(
        [str(python), "-c", "import kernel_lifecycle.resources as r; print(r.bundled('alembic')); print(r.demo_policy())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(str(env_site) in p for p in where), where  # from the wheel, not from this checkout

    upgraded = cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    status = cli("db", "status", "--json")
    assert status.returncode == 0 and '"current"' in status.stdout, status.stdout + status.stderr
    validated = cli("policies", "validate", where[1])
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # the skill-pack schema is package data: a pack validates from the wheel alone
    pack = subprocess.run([str(python), "-c", "from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR as d; print(d / 'sql')"],
                          cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert str(env_site) in pack
    checked = cli("skills", "validate", pack)
    assert checked.returncode == 0 and "a valid skill pack" in checked.stdout, checked.stdout + checked.stderr
    assert not list(work.iterdir()), "the CLI wrote into the directory it was run from"
