"""Policies: the pydantic schema (``schema``) and the YAML loader with located errors (``loader``)."""

from __future__ import annotations

from kernel_lifecycle.policy.loader import (
    LoadedPolicy,
    PolicyInvalid,
    PolicyIssue,
    check_policy,
    load_policy,
    parse_policy,
    policy_snapshot,
    validate_files,
)
from kernel_lifecycle.policy.schema import Policy, PolicyContext

__all__ = [
    "LoadedPolicy",
    "Policy",
    "PolicyContext",
    "PolicyInvalid",
    "PolicyIssue",
    "check_policy",
    "load_policy",
    "parse_policy",
    "policy_snapshot",
    "validate_files",
]
