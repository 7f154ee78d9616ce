"""Bases in the MLflow store: a base that only this machine can resolve (a converted GGUF file, a
named base, a local directory) is logged once per weights sha256, so that anyone with access to
the store, ``mlflow.pyfunc.load_model`` included, can load the kernels built on it.

One MLflow run per base in the experiment ``kernel-lifecycle-bases``, tagged ``base.sha256``;
its artifacts ``base/`` are the Hugging Face directory (config, safetensors, tokenizer). A second
kernel on the same base reuses the run. The manifest records the run's URI beside the base's
own spec (``BaseModelRef.artifact_uri``); the weights' sha256 is checked wherever it is read.
"""

from __future__ import annotations

from pathlib import Path

from kernel_lifecycle.registry.tracking import client, experiment_id

BASES_EXPERIMENT = "kernel-lifecycle-bases"
ARTIFACT_PATH = "base"


def published_base(sha256: str) -> str | None:
    """The artifact URI of a base already logged with weights ``sha256``, if any."""
    runs = client().search_runs(
        [experiment_id(BASES_EXPERIMENT)], filter_string=f"tags.`base.sha256` = '{sha256}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return f"runs:/{runs[0].info.run_id}/{ARTIFACT_PATH}" if runs else None


def publish_base(path: Path, *, sha256: str, spec: str) -> str:
    """Log the base directory ``path`` (weights ``sha256``, known here as ``spec``) once; its URI."""
    found = published_base(sha256)
    if found is not None:
        return found
    mlflow_client = client()
    run = mlflow_client.create_run(experiment_id(BASES_EXPERIMENT), run_name=f"base-{sha256[:12]}",
                                   tags={"base.sha256": sha256, "base.spec": spec})
    try:
        files = [p for p in sorted(Path(path).iterdir()) if p.is_file()]
        for item in files:
            mlflow_client.log_artifact(run.info.run_id, str(item), ARTIFACT_PATH)
    except BaseException:
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")  # never found by published_base
        raise
    mlflow_client.set_terminated(run.info.run_id, status="FINISHED")
    return f"runs:/{run.info.run_id}/{ARTIFACT_PATH}"
