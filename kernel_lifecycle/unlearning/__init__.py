"""Unlearning methods by name, as policies name them (``method: npo``), never by import path.

This registry is the only list of methods. Each method is a dataclass in its own module whose
fields are its options (validated by pydantic: types, ranges, unknown names), and whose
``needs_retain`` says whether its loss has a retain term. Method modules import torch only when
they train, so a policy or the CLI can check a method and its options without loading torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernel_lifecycle.errors import JobError, NotFoundError

if TYPE_CHECKING:
    from kernel_lifecycle.unlearning.base import StepMethod


DEFAULT_METHOD = "npo"

# name -> (module, class). One small module per method.
_REGISTRY: dict[str, tuple[str, str]] = {
    "npo": ("kernel_lifecycle.unlearning.npo", "NPO"),
    "grad_diff": ("kernel_lifecycle.unlearning.grad_diff", "GradDiff"),
    "grad_ascent": ("kernel_lifecycle.unlearning.grad_ascent", "GradAscent"),
    "negation": ("kernel_lifecycle.unlearning.negation", "Negation"),
    "simnpo": ("kernel_lifecycle.unlearning.simnpo", "SimNPO"),
    "rmu": ("kernel_lifecycle.unlearning.rmu", "RMU"),
    "undo": ("kernel_lifecycle.unlearning.undo", "Undo"),
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method; else raise, listing the known ones."""
    if name not in _REGISTRY:
        raise NotFoundError(f"unknown unlearning method {name!r}; known methods: {', '.join(METHODS)}")
    return name


def method_class(name: str) -> type[StepMethod]:
    module, cls_name = _REGISTRY[check_method(name)]
    return getattr(importlib.import_module(module), cls_name)


def option_names(name: str) -> tuple[str, ...]:
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(method_class(name)))


def option_problems(name: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem with ``options`` for method ``name``, as (option, message) pairs."""
    from pydantic import TypeAdapter, ValidationError

    known = option_names(name)
    problems = [
        (key, f"{key} is not an option of method {name!r} (its options: {', '.join(known) or 'none'})")
        for key in sorted(set(options) - set(known))
    ]
    try:
        TypeAdapter(method_class(name)).validate_python({k: v for k, v in options.items() if k in known})
    except ValidationError as exc:
        problems += [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
    return problems


def get_method(name: str, **options: Any) -> StepMethod:
    """The method ``name`` configured with ``options`` (e.g. beta, retain_weight); bad options
    raise JobError naming each problem."""
    problems = option_problems(name, options)
    if problems:
        raise JobError(f"unlearning method {name!r}: " + "; ".join(msg if key in msg else f"{key}: {msg}" for key, msg in problems))
    return method_class(name)(**options)


__all__ = ["DEFAULT_METHOD", "METHODS", "check_method", "get_method", "method_class", "option_names", "option_problems"]
