"""Every kernel version is an MLflow model: pyfunc from an alias URI, `mlflow models serve`,
hashes checked at load, and no pickle anywhere in the version's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kernel_lifecycle.cli.ui import free_port
from kernel_lifecycle.registry import client as registry
from kernel_lifecycle.settings import get_settings
from tests.factories import make_bundle, make_tiny_base
from tests.servers import stop_group, wait_until_answers

PROMPT = "def add(a, b):\n"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pyfunc")
    # two adapters, the second negated: the pyfunc model must stack and scale them as kernel-lifecycle does
    path = make_bundle(root, n_adapters=2, base_dir=make_tiny_base(root / "base"))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["adapters"][1]["weight"] = -1.0
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def champion(kl_home: Path, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The bundle registered and promoted (alias moved with its audit row): its alias URI.

    As in the quickstart, the manifest references its base as an artifact of an MLflow run
    (``runs:/<run>/base``), which a consumer's load downloads from the same store."""
    from kernel_lifecycle import aliases
    from kernel_lifecycle.db.engine import session_scope, upgrade
    from kernel_lifecycle.registry.tracking import client, experiment_id

    upgrade()
    mlflow_client = client()
    run_id = mlflow_client.create_run(experiment_id(), run_name="base").info.run_id
    mlflow_client.log_artifacts(run_id, str(bundle.parent / "base"), artifact_path="base")
    mlflow_client.set_terminated(run_id)
    own = tmp_path / "bundle"
    shutil.copytree(bundle, own)
    manifest = json.loads((own / "manifest.json").read_text())
    manifest["base"]["uri"] = f"runs:/{run_id}/base"
    (own / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("KL_BASE_CACHE", str(tmp_path / "bases"))
    kv = registry.register_version(own)
    with session_scope() as session:
        aliases.move_alias(session, name=kv.name, alias="champion", version=kv.version, actor="ci", reason="test")
    return f"models:/{kv.name}@champion"


def expected_completion(bundle: Path, max_new_tokens: int) -> str:
    """What kernel-lifecycle's own loader and generator produce for PROMPT (greedy)."""
    from kernel_lifecycle.boundary.generation import generate
    from kernel_lifecycle.models.loading import load_kernel

    kernel = load_kernel(bundle)
    return generate(kernel.model, kernel.tokenizer, [PROMPT], max_new_tokens=max_new_tokens)[0][0].text


def _without_kernel_lifecycle(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing kernel_lifecycle fails, as for a consumer."""
    guard = "import sys; sys.modules['kernel_lifecycle'] = None\n"
    env = {**os.environ, "MLFLOW_TRACKING_URI": get_settings().tracking_uri}
    return subprocess.run(
        [sys.executable, "-c", guard + code], env=env, capture_output=True, text=True, timeout=600, cwd="/"
    )


def test_alias_uri_loads_as_pyfunc_without_this_project(champion: str, bundle: Path) -> None:
    import mlflow.artifacts

    source = Path(mlflow.artifacts.download_artifacts(champion))
    files = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    assert {"MLmodel", "kernel_model.py", "manifest.json", "requirements.txt", "input_example.json"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".bin", ".pt"))], files
    mlmodel = (source / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel and "max_new_tokens" in mlmodel
    requirements = (source / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "torch", "transformers", "peft", "safetensors"}
    assert all("==" in r and "+" not in r for r in requirements), requirements

    run = _without_kernel_lifecycle(
        "import json, mlflow.pyfunc\n"
        f"model = mlflow.pyfunc.load_model({champion!r})\n"
        f"print('RESULT', json.dumps(model.predict([{PROMPT!r}], params={{'max_new_tokens': 12}})))\n"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # the base came from the store (runs:/), into the consumer's cache, named by its sha256
    manifest = json.loads((source / "manifest.json").read_text())
    assert [p.name for p in Path(os.environ["KL_BASE_CACHE"]).iterdir()] == [manifest["base"]["sha256"]]
    completions = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert completions == [expected_completion(bundle, 12)]


def test_corrupted_adapter_fails_the_load_naming_the_file(champion: str) -> None:
    import mlflow.pyfunc

    kv = registry.resolve(champion.removeprefix("models:/"))
    run = registry.client().get_run(kv.run_id)
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "bundle" / "adapters" / "adapter1" / "adapter_model.safetensors"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(Exception, match=r"adapters/adapter1/adapter_model\.safetensors: sha256 .* does not match"):
        mlflow.pyfunc.load_model(champion)


def test_base_must_match_the_manifest_hash(champion: str, tmp_path: Path) -> None:
    import mlflow.pyfunc

    other = make_tiny_base(tmp_path / "other-base", seed=1)
    with pytest.raises(Exception, match=r"other-base .*does not match the manifest's"):
        mlflow.pyfunc.load_model(champion, model_config={"base_dir": str(other)})


def test_mlflow_models_serve_answers_invocations(champion: str, bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    # as from an activated environment: MLflow execs the `uvicorn` script found on PATH
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": get_settings().tracking_uri, "PATH": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", champion, "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(proc, f"{url}/ping", log)
        body = json.dumps({"inputs": [PROMPT], "params": {"max_new_tokens": 12}}).encode()
        request = urllib.request.Request(
            f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
    finally:
        stop_group(proc)
    assert answer == {"predictions": [expected_completion(bundle, 12)]}


def test_flavor_leaves_the_bundle_and_its_hashes_as_they_are(tmp_path: Path) -> None:
    from kernel_lifecycle.hashing import sha256_tree
    from kernel_lifecycle.registry.bundle import verify_bundle
    from kernel_lifecycle.registry.pyfunc import add_pyfunc_flavor

    bundle = make_bundle(tmp_path, n_adapters=1)
    before = (sha256_tree(bundle / "adapters"), (bundle / "manifest.json").read_bytes())
    add_pyfunc_flavor(bundle)
    add_pyfunc_flavor(bundle)  # idempotent: registering a bundle twice rewrites the same files
    assert (sha256_tree(bundle / "adapters"), (bundle / "manifest.json").read_bytes()) == before
    assert verify_bundle(bundle).adapters[0].sha256 == json.loads(before[1])["adapters"][0]["sha256"]
    assert (bundle / "MLmodel").is_file() and (bundle / "kernel_model.py").is_file()


def test_versions_registered_before_the_flavor_still_load(kl_home: Path, tmp_path: Path) -> None:
    """A version whose source is a bare bundle (no MLmodel), as registered before this change."""
    from kernel_lifecycle.models.loading import load_kernel
    from kernel_lifecycle.registry.tracking import client, experiment_id

    bundle = make_bundle(tmp_path, n_adapters=1)
    mlflow_client = client()
    run_id = mlflow_client.create_run(experiment_id()).info.run_id
    mlflow_client.log_artifacts(run_id, str(bundle), artifact_path="bundle")
    mlflow_client.create_registered_model("demo-kernel")
    mlflow_client.create_model_version("demo-kernel", f"runs:/{run_id}/bundle", run_id=run_id)
    local = registry.fetch_bundle(registry.resolve("demo-kernel@1"))
    assert not (local / "MLmodel").exists()
    assert load_kernel(local).manifest.kernel == "demo-kernel"
