"""Reading policy files: YAML (safe tags only) -> :class:`Policy`, every error located.

Each problem becomes a :class:`PolicyIssue` with file, line, column and field. The file is
parsed once, by ruamel.yaml's round-trip loader: every mapping and sequence it builds knows the
line and column of its keys, values and items. Pydantic reports where an error is as a ``loc``
path (``('triggers', 1, 'cron', 'cron')``); the loader walks that path down the loaded data to
the value that is wrong. Cross-field problems (:func:`schema.cross_check`) carry their own path
and are located the same way. Duplicate keys are refused, each at its line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

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

Position = tuple[int, int]  # 0-based line and column, as ruamel.yaml records them


@dataclass(frozen=True)
class _Duplicate:
    mapping: CommentedMap
    key: Any
    position: Position
    first_line: int  # 0-based


class _PolicyConstructor(RoundTripConstructor):
    """Round-trip construction (positions everywhere) with safe_load's limits.

    A tag no safe loader knows (``!!python/object/apply:...``, ``!local``) is refused, where
    the round-trip loader would keep it as tagged data. A repeated key is recorded rather than
    raised at once, so it is reported with its path and with every other problem of the file;
    the first value is kept (the file is refused either way).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates: list[_Duplicate] = []

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if key in mapping:
            mark = key_node.start_mark
            self.duplicates.append(_Duplicate(mapping, key, (mark.line, mark.column), mapping.lc.key(key)[0]))
            return False
        return True


_PolicyConstructor.add_constructor(None, SafeConstructor.construct_undefined)


def _load_yaml(text: str) -> tuple[Any, list[_Duplicate]]:
    """One parse: the data (positions attached) and its repeated keys. Raises YAMLError."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _PolicyConstructor
    data = yaml.load(text)
    return data, yaml.constructor.duplicates


def _type_name(value: Any) -> str:
    """``list``, ``float``, ``date``: the Python type under ruamel's round-trip wrappers."""
    return next(t.__name__ for t in type(value).__mro__ if t.__module__ in ("builtins", "datetime"))


def _is_tag(node: Any, part: str | int) -> bool:
    """Whether ``part`` is the discriminator value of this mapping (its ``kind``)."""
    return isinstance(node, CommentedMap) and isinstance(part, str) and node.get("kind") == part


@dataclass(frozen=True)
class _Place:
    position: Position  # of the deepest part of the path present in the YAML
    key: Position | None  # of the last part, when it is a key present in the YAML
    field: str  # dotted, without the discriminator tags pydantic inserts into union paths


def _place(root: CommentedMap, loc: Loc, error_type: str) -> _Place:
    """Walk ``loc`` down the loaded data as far as the YAML has it."""
    node: Any = root
    position: Position = (root.lc.line, root.lc.col)
    key: Position | None = None
    kept: list[str | int] = []
    tagged: Any = None
    for n, part in enumerate(loc):
        last = n == len(loc) - 1
        if last and isinstance(node, CommentedMap) and part in node:
            key = node.lc.key(part)
        if _is_tag(node, part) and tagged is not node:
            tagged = node  # pydantic's discriminator tag: ('triggers', 0, 'cron', 'timezone')
            continue
        if isinstance(node, CommentedMap) and isinstance(part, str):
            if part in node:
                kept.append(part)
                position, node = node.lc.value(part), node[part]
            elif last or error_type == "missing":
                kept.append(part)  # a missing field; else a union tag such as 'cron'
            continue
        if isinstance(node, CommentedSeq) and isinstance(part, int):
            kept.append(part)
            if 0 <= part < len(node):
                position, node = node.lc.item(part), node[part]
            else:
                node = None  # a missing element: stay at the sequence
            continue
        if isinstance(part, int) or last:
            kept.append(part)
        node = None  # below a scalar or outside the YAML: the nearest position stays
    return _Place(position=position, key=key, field=dotted(tuple(kept)))


def _issue(file: str, position: Position, field: str, message: str) -> PolicyIssue:
    return PolicyIssue(file=file, line=position[0] + 1, column=position[1] + 1, field=field, message=message)


def _locate(file: str, root: CommentedMap, loc: Loc, message: str, error_type: str = "") -> PolicyIssue:
    place = _place(root, loc, error_type)
    position = place.key if error_type == "extra_forbidden" and place.key else place.position
    return _issue(file, position, place.field, message)


def _paths(node: Any, path: Loc = ()) -> Iterable[tuple[int, Loc]]:
    """(id, path) of every mapping in the loaded data (keys as the text they were written as)."""
    if isinstance(node, CommentedMap):
        yield id(node), path
        for key, value in node.items():
            yield from _paths(value, path + (str(key),))
    elif isinstance(node, CommentedSeq):
        for i, item in enumerate(node):
            yield from _paths(item, path + (i,))


def _duplicate_keys(file: str, root: CommentedMap, duplicates: list[_Duplicate]) -> list[PolicyIssue]:
    """safe_load keeps the last of two equal keys without a word; a policy refuses them."""
    paths = dict(_paths(root))
    return [
        _issue(file, d.position, dotted(paths[id(d.mapping)] + (str(d.key),)), f"key {str(d.key)!r} appears twice (first on line {d.first_line + 1})")
        for d in duplicates
        if id(d.mapping) in paths  # a repeat inside a dropped repeat: that one is reported already
    ]


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
    policy, issues, _root = _check(content, source, context)
    return policy, issues


def _check(
    content: str | bytes, source: str, context: PolicyContext | None
) -> tuple[Policy | None, list[PolicyIssue], CommentedMap | None]:
    """:func:`check_policy`, plus the loaded data (to locate more issues without parsing again)."""
    try:
        text = content.decode("utf-8") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"not UTF-8 text: {exc.reason} at byte {exc.start}")], None
    try:
        root, duplicates = _load_yaml(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        message = (
            f"unsupported YAML tag (safe YAML only): {problem}"
            if isinstance(exc, ConstructorError)
            else f"YAML syntax error: {problem}"
        )
        return None, [_issue(source, (mark.line, mark.column) if mark else (0, 0), "", message)], None
    except YAMLError as exc:
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"YAML error: {exc}")], None
    if not isinstance(root, CommentedMap):
        got = "an empty file" if root is None else f"a {_type_name(root)}"
        return None, [PolicyIssue(file=source, line=1, column=1, field="", message=f"a policy is a mapping of fields; got {got}")], None

    issues = _duplicate_keys(source, root, duplicates)
    ctx = context or PolicyContext.default()
    try:
        policy = Policy.model_validate(root, context={"policy": ctx, "defer_cross_checks": True})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            issues.append(_locate(source, root, tuple(error["loc"]), _message(error), error["type"]))
        return None, _sorted(issues), root
    for loc, message in cross_check(policy, ctx):
        issues.append(_locate(source, root, loc, message))
    return (None if issues else policy), _sorted(issues), root


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
        policy, found, root = _check(content, str(path), ctx)
        issues.extend(found)
        if policy is not None and root is not None:
            if policy.kernel in owners:
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
