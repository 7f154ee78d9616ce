"""Reading policy files: YAML (safe_load semantics only) -> :class:`Policy`, every error located.

Each problem becomes a :class:`PolicyIssue` with file, line, column and field. Pydantic reports
where an error is as a ``loc`` path (``('triggers', 1, 'cron', 'cron')``); the loader composes
the same YAML into nodes, which carry start marks, and walks the path down to the node that
holds the bad value. Cross-field problems (:func:`schema.cross_check`) carry their own path
and are located the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kernel_lifecycle.errors import PolicyError
from kernel_lifecycle.policy.schema import Loc, Policy, PolicyContext, cross_check, dotted

POLICY_SUFFIXES = (".yaml", ".yml")


class PolicyIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    line: int  # 1-based; 0 when the problem is the file itself (missing, unreadable)
    column: int  # 1-based; 0 when unknown
    field: str  # dotted path such as ``triggers[1].cron``; "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(document)'}: {self.message}"


class PolicyInvalid(PolicyError):
    """A policy does not validate; ``issues`` holds every problem, located."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = list(issues)
        files = sorted({i.file for i in self.issues})
        head = f"{len(self.issues)} problem(s) in policy {', '.join(files)}"
        super().__init__(head + "\n" + "\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    content: bytes
    sha256: str


# ---- YAML with positions ------------------------------------------------------------------------


def _is_tag(node: yaml.Node | None, part: str | int) -> bool:
    """Whether ``part`` is the discriminator value of this mapping (its ``kind``)."""
    if not isinstance(node, yaml.MappingNode) or not isinstance(part, str):
        return False
    return any(
        isinstance(k, yaml.ScalarNode) and k.value == "kind" and isinstance(v, yaml.ScalarNode) and v.value == part
        for k, v in node.value
    )


def _node_at(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    """The node ``loc`` points at, or its nearest ancestor present in the YAML."""
    node = root
    tagged: yaml.Node | None = None
    for part in loc:
        if _is_tag(node, part) and tagged is not node:
            tagged = node  # pydantic's discriminator tag: ('triggers', 0, 'cron', 'timezone')
            continue
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if match is None:
                continue  # a discriminator tag pydantic inserts, or a missing field
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        # anything else: a union tag or a missing element; stay at the nearest node
    return node


def _key_node(root: yaml.Node | None, loc: Loc) -> yaml.Node | None:
    """The key node of the last path element, when it is a key present in the YAML."""
    if not loc or not isinstance(loc[-1], str):
        return None
    parent = _node_at(root, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        for key, _value in parent.value:
            if isinstance(key, yaml.ScalarNode) and key.value == loc[-1]:
                return key
    return None


def _field_path(root: yaml.Node | None, loc: Loc, error_type: str) -> str:
    """The dotted field, without the discriminator tags pydantic inserts into union paths."""
    kept: list[str | int] = []
    node = root
    tagged: yaml.Node | None = None
    for n, part in enumerate(loc):
        last = n == len(loc) - 1
        if _is_tag(node, part) and tagged is not node:
            tagged = node
            continue
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part), None)
            if match is not None:
                kept.append(part)
                node = match
                continue
            if last or error_type == "missing":
                kept.append(part)
            # else: a tag such as 'cron' in ('triggers', 0, 'cron', 'timezone')
            continue
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            kept.append(part)
            node = node.value[part] if 0 <= part < len(node.value) else None
            continue
        if isinstance(part, int) or last:
            kept.append(part)
        node = None
    return dotted(tuple(kept))


def _locate(file: str, root: yaml.Node | None, loc: Loc, message: str, error_type: str = "") -> PolicyIssue:
    node = None
    if error_type == "extra_forbidden":
        node = _key_node(root, loc)
    if node is None:
        node = _node_at(root, loc)
    mark = node.start_mark if node is not None else None
    return PolicyIssue(
        file=file,
        line=mark.line + 1 if mark else 1,
        column=mark.column + 1 if mark else 1,
        field=_field_path(root, loc, error_type),
        message=message,
    )


def _duplicate_keys(file: str, node: yaml.Node | None, path: Loc = ()) -> list[PolicyIssue]:
    """safe_load keeps the last of two equal keys without a word; a policy refuses them."""
    issues: list[PolicyIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    issues.append(
                        PolicyIssue(
                            file=file,
                            line=key.start_mark.line + 1,
                            column=key.start_mark.column + 1,
                            field=dotted(path + (key.value,)),
                            message=f"key {key.value!r} appears twice (first on line {seen[key.value]})",
                        )
                    )
                else:
                    seen[key.value] = key.start_mark.line + 1
                issues.extend(_duplicate_keys(file, value, path + (key.value,)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues.extend(_duplicate_keys(file, item, path + (i,)))
    return issues


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (not part of the policy schema)"
    if kind == "missing":
        return "required field is missing"
    msg = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if kind not in ("value_error",) and "input" in error and not isinstance(error["input"], (dict, list)):
        msg += f" (got {error['input']!r})"
    return msg


# ---- parsing ------------------------------------------------------------------------------------


def check_policy(
    content: str | bytes, *, source: str = "<policy>", context: PolicyContext | None = None
) -> tuple[Policy | None, list[PolicyIssue]]:
    """Parse and validate; return the policy (None if invalid) and every issue found."""
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        return None, [
            PolicyIssue(
                file=source,
                line=mark.line + 1 if mark else 1,
                column=mark.column + 1 if mark else 1,
                field="",
                message=(
                    f"unsupported YAML tag (safe YAML only): {problem}"
                    if isinstance(exc, yaml.constructor.ConstructorError)
                    else f"YAML syntax error: {problem}"
                ),
            )
        ]
    except yaml.YAMLError as exc:
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"YAML error: {exc}")]
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"a policy is a mapping of fields; got {got}")]

    issues = _duplicate_keys(source, root)
    ctx = context or PolicyContext.default()
    try:
        policy = Policy.model_validate(data, context={"policy": ctx, "defer_cross_checks": True})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            issues.append(_locate(source, root, tuple(error["loc"]), _message(error), error["type"]))
        return None, _sorted(issues)
    for loc, message in cross_check(policy, ctx):
        issues.append(_locate(source, root, loc, message))
    return (None if issues else policy), _sorted(issues)


def _sorted(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    return sorted(issues, key=lambda i: (i.file, i.line, i.column, i.field))


def parse_policy(content: str | bytes, *, source: str = "<policy>", context: PolicyContext | None = None) -> Policy:
    """The policy in ``content``; raises :class:`PolicyInvalid` (a PolicyError) listing every issue."""
    policy, issues = check_policy(content, source=source, context=context)
    if issues or policy is None:
        raise PolicyInvalid(issues)
    return policy


def load_policy(path: str | Path, *, context: PolicyContext | None = None) -> LoadedPolicy:
    """Read, validate and fingerprint one policy file."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise PolicyInvalid([PolicyIssue(file=str(path), line=0, column=0, field="", message=f"cannot read: {exc.strerror}")]) from None
    policy = parse_policy(content, source=str(path), context=context)
    return LoadedPolicy(policy=policy, path=path, content=content, sha256=hashlib.sha256(content).hexdigest())


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for the ``*.yaml``/``*.yml`` files directly in it."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file()))
        else:
            out.append(path)
    return out


def validate_files(paths: Iterable[str | Path], *, context: PolicyContext | None = None) -> list[PolicyIssue]:
    """Every issue of every file (an empty list means all valid). Two files for one kernel clash."""
    ctx = context or PolicyContext.default()
    issues: list[PolicyIssue] = []
    owners: dict[str, str] = {}
    for path in expand_paths(paths):
        try:
            content = path.read_bytes()
        except OSError as exc:
            issues.append(PolicyIssue(file=str(path), line=0, column=0, field="", message=f"cannot read: {exc.strerror}"))
            continue
        policy, found = check_policy(content, source=str(path), context=ctx)
        issues.extend(found)
        if policy is not None:
            if policy.kernel in owners:
                root = yaml.compose(content.decode("utf-8"), Loader=yaml.SafeLoader)
                issues.append(
                    _locate(str(path), root, ("kernel",), f"kernel {policy.kernel!r} already has a policy in {owners[policy.kernel]}")
                )
            else:
                owners[policy.kernel] = str(path)
    return issues


def policy_snapshot(loaded: LoadedPolicy) -> dict[str, str]:
    """What `policies apply` records: the exact bytes (as text) and their sha256, per kernel.

    Keys match ``db.repo.record_policy_snapshot`` (plus ``applied_by`` from the caller).
    """
    return {
        "kernel": loaded.policy.kernel,
        "path": str(loaded.path),
        "content": loaded.content.decode("utf-8"),
        "sha256": loaded.sha256,
    }
