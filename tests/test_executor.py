"""The executor: ``local`` in process; ``ray`` against a real Ray instance this module starts on
127.0.0.1 and stops itself. Through Ray: a tiny upskill registers a version whose lineage
matches a local run's, scoring gives the local verdicts, a killed worker fails the job cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from kernel_lifecycle import executor
from kernel_lifecycle.db.repo import process_owner
from kernel_lifecycle.errors import ConfigurationError, JobError
from kernel_lifecycle.jobs.payloads import RUN_JOB
from kernel_lifecycle.settings import get_settings
from tests.factories import COBOL_PROGRAM, make_tiny_base, write_tiny_skills

# ---- local: no Ray needed -----------------------------------------------------------------------


def test_local_runs_in_process_and_refuses_bad_submissions(kl_home, monkeypatch) -> None:
    monkeypatch.delenv("KL_EXECUTOR", raising=False)
    get_settings.cache_clear()
    handle = executor.submit("kernel_lifecycle.executor:probe", {"n": 1}, actor="t", trigger_id="tr")
    assert (handle.executor, handle.ref) == ("local", None)
    seen = handle.result()
    assert (seen["executor"], seen["ref"], seen["pid"], seen["trigger_id"], seen["payload"]) == ("local", None, os.getpid(), "tr", {"n": 1})
    failing = executor.submit("kernel_lifecycle.executor:probe", {"fail": "no data"}, actor="t")
    with pytest.raises(JobError, match="no data"):
        failing.result()  # the job's own error, raised where the caller waits

    with pytest.raises(ConfigurationError, match="'module:function'"):
        executor.submit("no_colon", {}, actor="t")
    with pytest.raises(ConfigurationError, match="cannot be imported"):
        executor.submit("kernel_lifecycle.executor:nope", {}, actor="t")
    with pytest.raises(ConfigurationError, match="JSON-able"):
        executor.submit("kernel_lifecycle.executor:probe", {"x": object()}, actor="t")
    with pytest.raises(ConfigurationError, match="must be a number >= 0"):
        executor.submit("kernel_lifecycle.executor:probe", {}, actor="t", resources={"num_gpus": -1})
    with pytest.raises(ConfigurationError, match="--detach needs KL_EXECUTOR=ray"):
        executor.submit("kernel_lifecycle.executor:probe", {}, actor="t", detach=True)
    with pytest.raises(ConfigurationError, match="--detach needs KL_RAY_ADDRESS"):
        executor.submit("kernel_lifecycle.executor:probe", {}, actor="t", detach=True, executor="ray")
    monkeypatch.setenv("KL_EXECUTOR", "slurm")
    get_settings.cache_clear()
    with pytest.raises(Exception, match="KL_EXECUTOR must be 'local' or 'ray'"):
        get_settings()


# ---- ray ----------------------------------------------------------------------------------------

# each test below: marked ``ray``, and in one xdist group so one worker starts the module's Ray
# instance and builds its world


@pytest.fixture(scope="module")
def ray_instance():
    """A Ray instance of 2 CPUs on 127.0.0.1, started and stopped here (nothing else's)."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'kernel-lifecycle[ray]' (CI installs it)")
    if ray.is_initialized():
        pytest.skip("this process is already connected to a Ray instance that is not this module's")
    temp_dir = tempfile.mkdtemp(prefix="klray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=temp_dir, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.xdist_group("ray-instance")
def test_ray_task_sees_this_process_settings_and_raises_its_errors(ray_instance, kl_home) -> None:
    handle = executor.submit("kernel_lifecycle.executor:probe", {"n": 1}, actor="t", executor="ray", resources={"num_cpus": 1})
    seen = handle.result()
    local = executor.probe({}, actor="t")
    assert (seen["executor"], seen["ref"], seen["owner"]) == ("ray", handle.ref, process_owner())
    assert seen["pid"] != os.getpid()
    assert (seen["database"], seen["mlflow"]) == (local["database"], local["mlflow"])  # KL_HOME's files
    failing = executor.submit("kernel_lifecycle.executor:probe", {"fail": "no data"}, actor="t", executor="ray")
    with pytest.raises(JobError, match="^no data$"):  # the job's own typed error, not Ray's wrapper
        failing.result()


def _samples():
    from kernel_lifecycle.boundary.scorers import Sample

    py = []
    for i in range(7):
        completion = [f"    return x + {i}\n", "    return None\n", "    raise ValueError('no')\n", "    while True:\n        pass\n"][i % 4]
        py.append(Sample(task_id=f"py/{i}", prompt=f"def add_{i}(x):\n", completion=completion,
                         test=f"def check(candidate):\n    assert candidate(1) == {1 + i}\n", entry_point=f"add_{i}"))
    cob = [Sample(task_id=f"cob/{i}", completion=text) for i, text in enumerate(
        [COBOL_PROGRAM.format(i=1), "IDENTIFICATION DIVISION.\nPROGRAM-ID. X.\nPROCEDURE DIVISION.\n    MOVE.\n", "", COBOL_PROGRAM.format(i=2)]
    )]
    return {"python_tests": py, "cobol_compile": cob}


@pytest.mark.ray
@pytest.mark.xdist_group("ray-instance")
def test_scoring_through_ray_gives_the_local_verdicts(ray_instance, kl_home, monkeypatch, cli, tmp_path: Path) -> None:
    from kernel_lifecycle.boundary.scorers import get_scorer
    from kernel_lifecycle.boundary.scorers.fanout import FanOutScorer

    results = set()
    for name, samples in _samples().items():
        local = get_scorer(name).score(samples, workers=2, timeout=1.0)
        fanned = FanOutScorer(name, batch_size=3).score(samples, workers=1, timeout=1.0)  # several batches
        assert fanned == local
        results |= {v.result.split(":")[0] for v in local}
    assert {"passed", "failed", "timed out", "compiled", "did not compile", "no code"} <= results

    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s.model_dump()) + "\n" for s in _samples()["python_tests"]))
    code, out_local, _ = cli("boundary", "score", "--scorer", "python_tests", "--timeout", "1", str(path))
    assert code == 0
    monkeypatch.setenv("KL_EXECUTOR", "ray")
    get_settings.cache_clear()
    code, out_ray, err = cli("boundary", "score", "--scorer", "python_tests", "--timeout", "1", str(path))
    assert code == 0, err
    assert out_ray == out_local and len(out_ray.splitlines()) == 7


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory, mlflow_template):
    """The tiny kernel v1, distilled once for this module; KL_HOME and skills set while it lives."""
    from kernel_lifecycle.db.engine import dispose_engines, upgrade
    from kernel_lifecycle.jobs import run_job
    from kernel_lifecycle.jobs.config import DistillConfig

    root = tmp_path_factory.mktemp("executor-world")
    home = root / "klhome"
    home.mkdir()
    shutil.copy(mlflow_template, home / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KL_HOME", str(home))
        mp.setenv("KL_SKILLS_DIR", str(write_tiny_skills(root / "skills")))
        for var in ("KL_DATABASE_URL", "MLFLOW_TRACKING_URI", "KL_MLFLOW_TRACKING_URI", "KL_EXECUTOR"):
            mp.delenv(var, raising=False)
        get_settings.cache_clear()
        upgrade()
        config = DistillConfig(
            kernel="tiny", skills=["py", "cob"], teacher=str(make_tiny_base(root / "teacher", hidden=32, layers=2)),
            steps=2, batch_size=4, eval_every=2, eval_problems=2, harness=HARNESS,
        )
        assert run_job(config, actor="test").version == "1"
        yield home
        dispose_engines()
    get_settings.cache_clear()


HARNESS = {"max_new_tokens": 12, "split": "test", "selection_split": "dev"}


def _upskill_payload(steps: int) -> dict:
    from kernel_lifecycle.jobs.config import UpskillConfig

    return UpskillConfig(
        kernel="tiny", skill="sq", replay=["py"], steps=steps, batch_size=4, eval_every=2, eval_problems=2,
        harness=HARNESS, from_ref="tiny@1", report_skills=["py", "cob", "sq"],
    ).model_dump(mode="json")




def _job_json(cli, job_id: str) -> dict:  # noqa: ANN001
    code, out, err = cli("jobs", "show", job_id, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray-instance")
def test_upskill_through_ray_matches_a_local_run(ray_instance, tiny_world, cli) -> None:
    from kernel_lifecycle.boundary.tracking import load_version_report
    from kernel_lifecycle.registry import client as registry

    local = executor.submit(RUN_JOB, _upskill_payload(4), actor="test", executor="local").result()
    events: list[str] = []
    handle = executor.submit(RUN_JOB, _upskill_payload(4), actor="test", executor="ray", resources={"num_cpus": 1})
    assert handle.executor == "ray" and len(handle.ref) > 16
    remote = handle.result(on_event=events.append, poll_seconds=0.2)
    assert any("-> running" in e for e in events), events  # progress streamed from the job row

    kv_local, kv_ray = registry.get_version("tiny", local["version"]), registry.get_version("tiny", remote["version"])
    assert (kv_local.version, kv_ray.version) == ("2", "3")
    assert [v.version for v in registry.lineage("tiny", "3")] == ["3", "1"]
    assert [v.version for v in registry.lineage("tiny", "2")] == ["2", "1"]
    for key in ("kernel.parent_version", "kernel.skills.retained", "kernel.skills.retired", "kernel.job_kind", "kernel.base_uri"):
        assert kv_ray.tags.get(key) == kv_local.tags.get(key), key
    def shape(adapters: str) -> list[list[str]]:  # role and skill of each adapter, in order
        return [entry.strip().split(":")[1:3] for entry in adapters.split(">")]
    assert shape(kv_ray.tags["kernel.adapters"]) == shape(kv_local.tags["kernel.adapters"]) == [["upskill", "sq"]]
    # one harness: the same scorer versions and probe files behind both reports
    assert load_version_report(kv_ray).harness_hash == load_version_report(kv_local).harness_hash

    ray_job = _job_json(cli, kv_ray.tags["kernel.job_id"])
    assert (ray_job["executor"], ray_job["executor_ref"], ray_job["state"]) == ("ray", handle.ref, "registered")
    local_job = _job_json(cli, kv_local.tags["kernel.job_id"])
    assert (local_job["executor"], local_job["executor_ref"]) == ("local", None)
    code, out, _ = cli("jobs", "list", "--json")
    listed = {j["id"]: (j["executor"], j["executor_ref"]) for j in json.loads(out)}
    assert listed[ray_job["id"]] == ("ray", handle.ref)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray-instance")
def test_the_champions_evaluation_runs_as_a_ray_task(ray_instance, tiny_world, cli, tmp_path) -> None:
    from kernel_lifecycle import aliases
    from kernel_lifecycle.db.engine import session_scope
    from kernel_lifecycle.pipeline import EVALUATE
    from kernel_lifecycle.policy.loader import load_policy
    from kernel_lifecycle.policy_apply import apply_policy
    from tests.jobs.test_crash_safety import POLICY

    (tmp_path / "tiny.yaml").write_text(POLICY)
    apply_policy(load_policy(tmp_path / "tiny.yaml"), actor="alice")
    with session_scope() as session:
        aliases.move_alias(session, name="tiny", alias="champion", version="1", actor="alice", reason="setup")
    handle = executor.submit(EVALUATE, {"kernel": "tiny"}, actor="test", executor="ray")
    done = handle.result(poll_seconds=0.2)
    job = _job_json(cli, done["job_id"])
    assert (job["kind"], job["state"], job["executor"], job["executor_ref"]) == ("evaluate", "succeeded", "ray", handle.ref)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray-instance")
def test_killed_worker_fails_the_job_and_registers_nothing(ray_instance, tiny_world, cli, monkeypatch) -> None:
    from kernel_lifecycle.registry import client as registry
    from kernel_lifecycle.registry.tracking import client as mlflow_client

    before = [v.version for v in registry.list_versions("tiny")]
    handle = executor.submit(RUN_JOB, _upskill_payload(400), actor="test", executor="ray")
    deadline = time.monotonic() + 300
    job = handle.job()
    while (job is None or job.state != "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = handle.job()
    assert job is not None and job.state == "running", "the Ray task never opened its job"
    assert job.owner == process_owner()  # the driver: Ray ends a task whose driver died
    running = [e["message"] for e in _job_json(cli, job.id)["events"] if e["to"] == "running"][0]
    pid = int(running.rpartition(":")[2])  # "MLflow run ...; worker host:pid", written by the worker
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)

    with pytest.raises(JobError, match=f"job {job.id} failed: the Ray worker running it was lost"):
        handle.result()
    row = _job_json(cli, job.id)
    assert row["state"] == "failed" and "Ray worker" in row["error"], row
    assert (row["executor"], row["executor_ref"]) == ("ray", handle.ref)
    assert mlflow_client().get_run(job.mlflow_run_id).info.status == "FAILED"
    assert [v.version for v in registry.list_versions("tiny")] == before  # nothing registered

    # the retry (the scheduler's, under the same lease) is a new job, and it runs; through the
    # entry the CLI and the scheduler's pipeline call, which reads KL_EXECUTOR
    from kernel_lifecycle.jobs.recipes import parse_config
    from kernel_lifecycle.cli.output import RichDisplay
    from kernel_lifecycle.jobs.payloads import submit_job

    monkeypatch.setenv("KL_EXECUTOR", "ray")
    get_settings.cache_clear()
    again = submit_job(parse_config(_upskill_payload(2)), actor="test", display=RichDisplay(), resources={"num_cpus": 1})
    assert again.parent_version == "1" and again.version not in before
    assert _job_json(cli, again.tags["kernel.job_id"])["executor"] == "ray"


def test_plan_resources_are_what_a_job_declares() -> None:
    from pydantic import ValidationError

    from kernel_lifecycle.policy.schema import DownskillPlan, UpskillPlan

    plan = UpskillPlan(skill="py", resources={"num_gpus": 1})
    assert executor.check_resources(plan.resources.model_dump()) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert DownskillPlan(skill="cob", method="npo").resources.num_gpus == 0.0
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        UpskillPlan(skill="py", resources={"num_gpus": -1})
    with pytest.raises(ValidationError, match="Extra inputs"):
        UpskillPlan(skill="py", resources={"gpus": 1})


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 with its dashboard (the Jobs API), as a team runs one
    (`ray start --head`); ``--block`` keeps it in this process's child, whose end stops it."""
    import subprocess
    import sys

    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'kernel-lifecycle[ray]' (CI installs it)")
    from ray.job_submission import JobSubmissionClient

    from kernel_lifecycle.cli.ui import free_port

    # every port its own: another Ray on this machine (this module's, another test run's) holds the defaults
    port, dashboard, agent, agent_grpc, metrics = (free_port() for _ in range(5))
    temp_dir = tempfile.mkdtemp(prefix="klray-", dir="/tmp")
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--include-dashboard=true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
         "--metrics-export-port", str(metrics), "--num-cpus", "1", "--temp-dir", temp_dir, "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # a job's entrypoint runs `python`: this environment's, as a cluster image's would be
        # no token on a loopback-only test cluster (a team's cluster keeps Ray's token auth: RAY_AUTH_TOKEN)
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
             "RAY_AUTH_MODE": "disabled"},
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:  # ready when a job is accepted: the dashboard is up and the node's job agent too
                JobSubmissionClient(f"http://127.0.0.1:{dashboard}").submit_job(entrypoint="true")
                break
            except Exception:  # noqa: BLE001 - not up yet ("No available agent to submit job")
                assert time.monotonic() < deadline, "the Ray head did not accept a job in 300 s"
                time.sleep(1)
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    finally:
        head.terminate()  # --block: stops the head's processes as it exits
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.slow
def test_detached_job_outlives_the_submitting_call(ray_head, kl_home, monkeypatch) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    address, dashboard = ray_head
    monkeypatch.setenv("KL_RAY_ADDRESS", address)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # Ray's own variable would override ours
    get_settings.cache_clear()
    handle = executor.submit("kernel_lifecycle.executor:probe", {"n": 7}, actor="t", executor="ray",
                             detach=True, resources={"num_cpus": 1})
    assert handle.detached and handle.ref.startswith("kl-")
    with pytest.raises(JobError, match="submitted detached"):
        handle.result()
    client = JobSubmissionClient(dashboard)
    deadline = time.monotonic() + 300
    while client.get_job_status(handle.ref) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, "the detached Ray job did not finish in 300 s"
        time.sleep(1)
    logs = client.get_job_logs(handle.ref)
    assert client.get_job_status(handle.ref) == JobStatus.SUCCEEDED, logs[-2000:]
    seen = json.loads(logs.strip().splitlines()[-1])
    assert (seen["executor"], seen["ref"], seen["payload"]) == ("ray", handle.ref, {"n": 7})
    assert seen["database"] == executor.probe({}, actor="t")["database"]
