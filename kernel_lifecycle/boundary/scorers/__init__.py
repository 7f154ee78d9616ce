"""Scorers by name: the arbiters of skills, found through the ``kernel_lifecycle.scorers``
entry-point group.

Every scorer, the three built-ins (``python_tests``, ``cobol_compile``, ``sql_exec``) included,
is registered the same way, in its package's metadata::

    [project.entry-points."kernel_lifecycle.scorers"]
    shell_syntax = "my_package.scorer:ShellSyntaxScorer"

The entry point's name is the scorer's name (what ``skill.json`` and policies write); it loads
a :class:`Scorer` subclass whose ``name`` is that same name. ``get_scorer(name)`` builds one;
``scorer_names()`` lists every registered name. A plugin that fails to load, or loads something
that is not a Scorer of that name, is one :class:`ConfigurationError` naming the entry point and
what to do; it is never registered, and the other scorers still work.

The scorer API (what a plugin implements) is documented on :class:`Scorer` in ``base.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, distributions
from typing import Any

from kernel_lifecycle.boundary.scorers.base import (
    HARNESS_REVISION,
    Sample,
    SampleFormatError,
    Scorer,
    Verdict,
    read_samples,
)
from kernel_lifecycle.errors import ConfigurationError, KernelLifecycleError, NotFoundError

ENTRY_POINT_GROUP = "kernel_lifecycle.scorers"
BUILTIN_SCORERS: tuple[str, ...] = ("python_tests", "cobol_compile", "sql_exec")

__all__ = [
    "BUILTIN_SCORERS", "ENTRY_POINT_GROUP", "HARNESS_REVISION", "Sample", "SampleFormatError", "Scorer", "Verdict",
    "answer_shape", "get_scorer", "read_samples", "scorer_class", "scorer_names",
]


def _entry_points() -> dict[str, EntryPoint]:
    # every distribution's, not entry_points(group=...): that one keeps the first distribution of
    # a name on sys.path, and a stale ``kernel_lifecycle.egg-info`` left in a checkout's root
    # (an editable install's by-product) would hide the installed metadata from a run there
    found: dict[str, EntryPoint] = {}
    for dist in distributions():
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ep)  # the first on sys.path wins, as for imports
    return found


def scorer_names() -> tuple[str, ...]:
    """Every registered scorer that loads: the built-ins first, then plugins by name (a plugin
    that fails to load is left out; ``scorer_class`` says why)."""
    found = _entry_points()
    names = {name for name in found if name in BUILTIN_SCORERS or _loads(name)}
    missing = [n for n in BUILTIN_SCORERS if n not in names]
    if missing:
        raise ConfigurationError(
            f"the built-in scorers {', '.join(missing)} are not registered: kernel-lifecycle's package metadata "
            "is stale or broken; reinstall it (pip install -e . or pip install kernel-lifecycle)"
        )
    return (*BUILTIN_SCORERS, *sorted(names - set(BUILTIN_SCORERS)))


def _loads(name: str) -> bool:
    try:
        scorer_class(name)
    except KernelLifecycleError:
        return False
    return True


def scorer_class(name: str) -> type[Scorer]:
    """The Scorer class registered as ``name``; NotFoundError for an unknown name,
    ConfigurationError for a plugin that cannot be loaded or is not a Scorer named ``name``."""
    ep = _entry_points().get(name)
    if ep is None:
        raise NotFoundError(f"unknown scorer {name!r}; known scorers: {', '.join(scorer_names())} "
                            f"(a plugin registers one in the {ENTRY_POINT_GROUP!r} entry-point group)")
    try:
        cls = ep.load()
    except Exception as exc:  # a plugin's import can raise anything: one line, nothing registered
        raise ConfigurationError(
            f"scorer plugin {name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
            "fix or uninstall the package that provides it"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise ConfigurationError(f"scorer plugin {name!r} ({ep.value}) is not a kernel_lifecycle Scorer subclass; "
                                 "fix or uninstall the package that provides it")
    if getattr(cls, "name", None) != name:
        raise ConfigurationError(f"scorer plugin {name!r} ({ep.value}) calls itself {getattr(cls, 'name', None)!r}; "
                                 "its entry point's name and its class's `name` must be the same")
    return cls


@cache
def answer_shape(name: str) -> tuple[str, bool]:
    """What scorer ``name`` declares of the answers it judges: their language (``Scorer.language``,
    empty for none) and whether an answer alone is the whole program (``Scorer.program``)."""
    cls = scorer_class(name)
    return cls.language, cls.program


def get_scorer(name: str, **options: Any) -> Scorer:
    """A new scorer instance; ``options`` (``mode``, ``limits``) go to its constructor. A plugin
    (any scorer outside this package) that raises, when built or when it scores, is one
    ConfigurationError line naming it: no verdict of it is used."""
    cls = scorer_class(name)
    if cls.__module__.startswith("kernel_lifecycle."):
        return cls(**options)
    return _Guarded(name, _guard(name, "failed to start", lambda: cls(**options)))


def _guard(name: str, what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except KernelLifecycleError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"scorer plugin {name!r} {what}: {type(exc).__name__}: {exc}; "
                                 "nothing it judged is used (fix or uninstall the plugin)") from None


class _Guarded(Scorer):
    """A plugin's scorer, whose exceptions become one line (a bug in a plugin is not a verdict)."""

    default_timeout = 0.0

    def __init__(self, name: str, inner: Scorer) -> None:  # noqa: D107 - no sandbox options of its own
        self.name = name  # type: ignore[misc]
        self.inner = inner
        self.mode, self.limits, self.default_timeout = inner.mode, inner.limits, inner.default_timeout

    def version(self) -> str:
        return _guard(self.name, "raised in version()", self.inner.version)

    def score(self, samples: list[Sample], *, workers: int = 2, timeout: float | None = None) -> list[Verdict]:
        verdicts = _guard(self.name, "raised while scoring",
                          lambda: self.inner.score(samples, workers=workers, timeout=timeout))
        if not (isinstance(verdicts, list) and len(verdicts) == len(samples)
                and all(isinstance(v, Verdict) and v.task_id == s.task_id for v, s in zip(verdicts, samples))):
            raise ConfigurationError(f"scorer plugin {self.name!r} did not return one Verdict per sample, in order; "
                                     "nothing it judged is used (fix or uninstall the plugin)")
        return verdicts
