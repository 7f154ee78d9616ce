"""Files the package ships: the lifecycle DB's migrations (``alembic/``) and the demo policy
(``policies/``), which live at the repository's top level, and the demo base's weights.

A wheel carries them as package data under ``kernel_lifecycle/_bundled/<name>`` (pyproject maps
the top-level folders there); a checkout (editable install, tests) reads them where they are.
"""

from __future__ import annotations

from pathlib import Path

from kernel_lifecycle.errors import KernelLifecycleError

_PACKAGE = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    """The folder ``name`` (``alembic`` or ``policies``) as installed, else in the checkout."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise KernelLifecycleError(
        f"the package's {name}/ folder is missing from {_PACKAGE}; reinstall kernel-lifecycle"
    )


def demo_policy() -> Path:
    return bundled("policies") / "python-kernel.yaml"


# The shipped demo base's weights (sha256 over its *.safetensors, as manifests record a base): every
# machine starts the demo from these bytes (``demo/base_builder.py`` built them; ``kernel-lifecycle
# jobs build-base --force`` rebuilds one into the cache, with other bytes on another machine).
DEMO_BASE_SHA256 = "5a4cec4d456b5425cc080e2f1a817d323cceff7f4db9684bacf96242226dcf51"


def demo_base_dir() -> Path:
    """The folder of the shipped demo base (config, weights, tokenizer, build.json)."""
    return _PACKAGE / "demo" / "base"


# The demo base's retrain references: its recipe rebuilt without one skill's data, on its own
# tokenizer (``build_demo_base(without=SKILL)``), shipped so every machine judges relearning
# against the same bytes; skill -> sha256 of the weights.
DEMO_REFERENCE_SHA256: dict[str, str] = {"cobol": "cdaf26f3f8055fd06102e8dbe1c38dd418bf41f31936e2235d795ff57671233e"}


def demo_reference_dir(skill: str) -> Path:
    """The folder of the shipped demo base rebuilt without ``skill``."""
    return _PACKAGE / "demo" / f"base-without-{skill}"
