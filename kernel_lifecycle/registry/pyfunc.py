"""Make a kernel bundle an MLflow model: an ``MLmodel`` with the pyfunc flavor beside the manifest.

The flavor is "models from code": MLflow copies ``kernel_model.py`` into the bundle and runs it at
load time, so nothing is pickled (MLflow's default for a ``PythonModel`` is cloudpickle). The
signature, input example and requirements are written explicitly, so saving never loads the
model nor scans the environment. The bundle's own files (``manifest.json``, ``adapters/``) and
their hashes are untouched; ``verify_bundle`` accepts bundles with or without these files.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.registry.bundle import MANIFEST, verify_bundle

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

MODEL_CODE = Path(__file__).with_name("kernel_model.py")
INPUT_EXAMPLE = ["def add(a, b):\n"]
# what kernel_model.py imports (huggingface_hub and tokenizers come with transformers)
REQUIREMENTS = ("mlflow", "torch", "transformers", "peft", "safetensors")
DEFAULT_MAX_NEW_TOKENS = 64


def pinned_requirements() -> list[str]:
    """``name==version`` of what is installed here, without local labels (``2.5.1+cpu`` is not on PyPI)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in REQUIREMENTS]


def signature() -> ModelSignature:
    """Prompts in (strings), completions out (strings); generation settings as params."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string)]),
        outputs=Schema([ColSpec(DataType.string)]),
        params=ParamSchema(
            [
                ParamSpec("max_new_tokens", DataType.long, DEFAULT_MAX_NEW_TOKENS),
                ParamSpec("temperature", DataType.double, 0.0),
                ParamSpec("seed", DataType.long, 0),
            ]
        ),
    )


def add_pyfunc_flavor(bundle_dir: Path) -> None:
    """Write ``MLmodel`` (pyfunc), the model code, example and requirements into a verified bundle."""
    import mlflow.pyfunc

    bundle_dir = Path(bundle_dir)
    verify_bundle(bundle_dir)
    with tempfile.TemporaryDirectory(prefix="kl-pyfunc-") as tmp:
        staged = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            path=str(staged),
            python_model=str(MODEL_CODE),
            signature=signature(),
            input_example=(INPUT_EXAMPLE, {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS}),
            pip_requirements=pinned_requirements(),
            # declared so a consumer may override it: load_model(uri, model_config={"base_dir": ...})
            # or MLFLOW_PYFUNC_INFERENCE_CONFIG='{"base_dir": ...}' for `mlflow models serve`
            model_config={"base_dir": ""},
        )
        for item in staged.iterdir():
            if item.name in (MANIFEST, "adapters"):
                raise BundleError(f"MLflow wrote {item.name} into the model folder; it would replace the bundle's own")
            target = bundle_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(item), str(target))
    verify_bundle(bundle_dir)
