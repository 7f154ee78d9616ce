"""Typed errors. Each carries a message a person can act on; the CLI prints it on one line.

Exit statuses (README, and ``cli/app.py`` sets them): 1 for a refused action or invalid input,
2 for usage errors.
"""

from __future__ import annotations


class KernelLifecycleError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1


class ConfigurationError(KernelLifecycleError):
    """Settings, URLs or the environment are wrong."""


class DatabaseError(KernelLifecycleError):
    """The lifecycle database is unreachable or not at the code's schema revision."""


class BundleError(KernelLifecycleError):
    """A kernel bundle is malformed, tampered with, or not in safetensors."""


class NotFoundError(KernelLifecycleError):
    """An unknown kernel, version, alias, job, skill or policy."""


class PolicyError(KernelLifecycleError):
    """A policy file does not validate."""


class RefusedError(KernelLifecycleError):
    """An action was refused by a rule (gate failed, approvals missing, lost a race)."""


class SandboxError(KernelLifecycleError):
    """The sandbox cannot be set up as asked (for example bubblewrap is missing)."""


class JobError(KernelLifecycleError):
    """A job cannot start or failed with a known reason."""
