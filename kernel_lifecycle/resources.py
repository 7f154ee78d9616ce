"""Files the package ships that live at the repository's top level: the lifecycle DB's
migrations (``alembic/``) and the demo policy (``policies/``).

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
