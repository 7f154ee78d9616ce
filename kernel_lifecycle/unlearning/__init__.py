"""Unlearning methods by name, as policies name them (``method: npo``), never by import path.

Names and option checks are available without importing torch, so a policy or the CLI can
refuse an unknown method before any model is loaded; ``get_method`` imports the module.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.errors import JobError, NotFoundError

if TYPE_CHECKING:
    # every method is a StepMethod (unlearning/base.py); ``run`` is its single entry point
    from kernel_lifecycle.unlearning.base import StepMethod as UnlearningMethod


DEFAULT_METHOD = "npo"

# name -> (module, class). One small module per method.
_REGISTRY: dict[str, tuple[str, str]] = {
    "npo": ("kernel_lifecycle.unlearning.npo", "NPO"),
    "grad_diff": ("kernel_lifecycle.unlearning.grad_diff", "GradDiff"),
    "grad_ascent": ("kernel_lifecycle.unlearning.grad_ascent", "GradAscent"),
    "negation": ("kernel_lifecycle.unlearning.negation", "Negation"),
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method; else raise, listing the known ones."""
    if name not in _REGISTRY:
        raise NotFoundError(
            f"unknown unlearning method {name!r}; known methods: {', '.join(METHODS)}"
        )
    return name


def get_method(name: str, **options: Any) -> UnlearningMethod:
    """The method ``name`` configured with ``options`` (e.g. beta, retain_weight)."""
    module, cls_name = _REGISTRY[check_method(name)]
    cls = getattr(importlib.import_module(module), cls_name)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise JobError(
            f"unlearning method {name!r} has no option(s) {', '.join(unknown)}; "
            f"its options: {', '.join(known) or 'none'}"
        )
    return cls(**options)


__all__ = ["DEFAULT_METHOD", "METHODS", "check_method", "get_method"]
