"""The job kinds, in one table: each kind's config type, what it reads of a policy, and its run.

A recipe is one module read top to bottom (``adapt``, ``distill``, ``upskill``, ``downskill``): its
``policy_fields(policy)`` and ``run(config, *, actor, trigger_id, display)``. Adding a kind is
one module and one row here; the CLI, the scheduler's pipeline, the quickstart and a Ray worker
all go through ``from_policy``/``parse_config``/``run_job``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from kernel_lifecycle.boundary.skills import skill_sources
from kernel_lifecycle.display import SILENT, Display
from kernel_lifecycle.errors import JobError
from kernel_lifecycle.jobs import adapt, distill, downskill, upskill
from kernel_lifecycle.jobs.config import AdaptConfig, DistillConfig, DownskillConfig, UpskillConfig, policy_base_fields
from kernel_lifecycle.policy.schema import Policy
from kernel_lifecycle.registry.client import KernelVersion

AnyConfig = Union[AdaptConfig, DistillConfig, UpskillConfig, DownskillConfig]


@dataclass(frozen=True)
class Recipe:
    kind: str
    config: type[BaseModel]
    policy_fields: Callable[[Policy], dict[str, Any]]  # the plan fields it reads (raises when the plan is missing)
    run: Callable[..., KernelVersion]  # (config, *, actor, trigger_id, display) -> the candidate version


RECIPES: dict[str, Recipe] = {
    recipe.kind: recipe
    for recipe in (
        Recipe("adapt", AdaptConfig, adapt.policy_fields, adapt.run),
        Recipe("distill", DistillConfig, distill.policy_fields, distill.run),
        Recipe("upskill", UpskillConfig, upskill.policy_fields, upskill.run),
        Recipe("downskill", DownskillConfig, downskill.policy_fields, downskill.run),
    )
}
KINDS = tuple(RECIPES)
_CONFIG = TypeAdapter(Annotated[AnyConfig, Field(discriminator="kind")])


def recipe_of(kind: str) -> Recipe:
    if kind not in RECIPES:
        raise JobError(f"unknown job kind {kind!r}; kinds: {', '.join(KINDS)}")
    return RECIPES[kind]


def from_policy(kind: str, policy: Policy | None, policy_sha256: str | None, **overrides: Any) -> AnyConfig:
    """The config of a ``kind`` job for ``policy``'s kernel: thresholds, harness and skills, the
    recipe's plan fields, then ``overrides`` (``None`` values ignored). Overriding the method drops
    the plan's options, which belong to the plan's method, unless options are given too.
    ``policy=None``: the config's defaults."""
    recipe = recipe_of(kind)
    given = {k: v for k, v in overrides.items() if v is not None}
    fields: dict[str, Any] = {}
    if policy is not None:
        fields = {**policy_base_fields(policy, policy_sha256), **recipe.policy_fields(policy)}
    if "method" in given and given["method"] != fields.get("method") and "method_options" not in given:
        fields.pop("method_options", None)
    fields.update(given)
    try:
        return recipe.config.model_validate(fields)  # type: ignore[return-value]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise JobError(f"{kind} job config refused: {problems}") from None


def parse_config(data: dict[str, Any] | str) -> AnyConfig:
    """A config from its JSON form (``model_dump``), e.g. on the far side of a process boundary."""
    return _CONFIG.validate_json(data) if isinstance(data, str) else _CONFIG.validate_python(data)


def run_job(config: AnyConfig | dict[str, Any] | str, *, actor: str, trigger_id: str | None = None,
            display: Display = SILENT) -> KernelVersion:
    """Run the recipe of ``config.kind`` with ``config`` (a config or its JSON form); returns the
    version it registered as candidate."""
    if isinstance(config, (dict, str)):
        config = parse_config(config)
    with skill_sources(config.skill_sources):
        return RECIPES[config.kind].run(config, actor=actor, trigger_id=trigger_id, display=display)
