"""Skill packs: one skill's folder (``skill.json`` + one JSONL file per split), checked against
the JSON schema shipped beside this module (``skillpack.schema.json``) and the rules a schema
cannot say (unique task ids, fresh families held out, a registered scorer).

``pack_problems(root)`` returns every problem with its file and line; ``load_pack(root)`` is a
:class:`Skill` or a :class:`SkillPackError` whose message is the problems, one a line. Nothing
here writes; a pack that does not validate is never measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from kernel_lifecycle.boundary.scorers import scorer_class, scorer_names
from kernel_lifecycle.boundary.skills import PRETRAIN_FILE, SPLITS, Skill, load_skill
from kernel_lifecycle.errors import KernelLifecycleError

SCHEMA_FILE = Path(__file__).with_name("skillpack.schema.json")
REQUIRED_SPLITS = ("train", "dev", "test")  # jobs train on train, choose on dev, gates decide on test
HELD_OUT_SPLIT = "fresh"  # its families appear in no other split


class SkillPackError(KernelLifecycleError):
    """A skill pack does not validate; the message lists every problem, one a line."""


@dataclass(frozen=True)
class PackProblem:
    file: str
    line: int | None
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@lru_cache(maxsize=1)
def pack_schema() -> dict[str, Any]:
    """The shipped JSON schema: ``skill.json`` at its root, one probe line as ``$defs/probe``."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def _validator(ref: str):  # noqa: ANN202 - a jsonschema validator
    from jsonschema import Draft202012Validator

    schema = pack_schema()
    return Draft202012Validator({**schema, "$ref": ref})


def _where(error: Any) -> str:  # noqa: ANN401 - a jsonschema ValidationError
    path = ".".join(str(p) for p in error.absolute_path)
    return f"{path}: {error.message}" if path else error.message


def _key_line(text: str, key: str) -> int:
    """The line of ``"key"`` in a JSON text (1 when it is not there: a missing key)."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        if f'"{key}"' in line:
            return lineno
    return 1


def _check_skill_json(root: Path, scorers: Iterable[str] | None) -> tuple[list[PackProblem], dict[str, Any] | None]:
    path = root / "skill.json"
    if not path.is_file():
        return [PackProblem(str(path), None, "missing: every pack has a skill.json (name, scorer)")], None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        return [PackProblem(str(path), exc.lineno, f"not JSON ({exc.msg})")], None
    problems = [
        PackProblem(str(path), _key_line(text, str(e.absolute_path[0]) if e.absolute_path else ""), _where(e))
        for e in sorted(_validator("#/$defs/skill").iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))
    ]
    scorer = spec.get("scorer") if isinstance(spec, dict) else None
    if isinstance(scorer, str) and scorer:
        known = tuple(scorers) if scorers is not None else scorer_names()
        if scorer not in known:
            try:  # a registered plugin that does not load says why; an unknown name says what is known
                scorer_class(scorer)
                why = f"scorer {scorer!r} is not available here"
            except KernelLifecycleError as exc:
                why = str(exc)
            problems.append(PackProblem(str(path), _key_line(text, "scorer"), why))
    return problems, spec if not problems else None


def _split_files(root: Path) -> tuple[list[PackProblem], dict[str, Path]]:
    problems, files = [], {}
    for split in SPLITS:
        path = root / f"{split}.jsonl"
        if path.is_file():
            files[split] = path
        elif split in REQUIRED_SPLITS:
            problems.append(PackProblem(str(path), None, f"missing split {split!r}: a pack needs "
                                        f"{', '.join(f'{s}.jsonl' for s in REQUIRED_SPLITS)}"))
    known = {f"{s}.jsonl" for s in SPLITS} | {PRETRAIN_FILE}
    for path in sorted(root.glob("*.jsonl")):
        if path.name not in known:
            problems.append(PackProblem(str(path), None, f"not a split file (splits: {', '.join(SPLITS)})"))
    return problems, files


def _probe_lines(path: Path) -> Iterable[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.strip():
                yield lineno, line


def pack_problems(root: Path, *, scorers: Iterable[str] | None = None) -> list[PackProblem]:
    """Every problem of the pack at ``root``, in file order; empty when it is valid.
    ``scorers``: the registered names (default: ``scorer_names()``)."""
    root = Path(root)
    if not root.is_dir():
        return [PackProblem(str(root), None, "not a folder: a skill pack is a folder with skill.json and split files")]
    problems, _spec = _check_skill_json(root, scorers)
    split_problems, files = _split_files(root)
    problems += split_problems
    probe = _validator("#/$defs/probe")
    seen: dict[str, str] = {}  # task id -> where it was first
    families: dict[str, dict[str, str]] = {}  # split -> family -> where it was first
    for split, path in files.items():
        count = 0
        for lineno, line in _probe_lines(path):
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(PackProblem(str(path), lineno, f"not a JSON object ({exc.msg} at column {exc.colno})"))
                continue
            errors = sorted(probe.iter_errors(row), key=lambda e: list(map(str, e.absolute_path)))
            problems += [PackProblem(str(path), lineno, _where(e)) for e in errors]
            if errors or not isinstance(row, dict):
                continue
            count += 1
            task_id = row["task_id"]
            if task_id in seen:
                problems.append(PackProblem(str(path), lineno, f"duplicate task_id {task_id!r} (first at {seen[task_id]})"))
            else:
                seen[task_id] = where
            if row.get("family"):
                families.setdefault(split, {}).setdefault(row["family"], where)
        if count == 0 and split in REQUIRED_SPLITS:
            problems.append(PackProblem(str(path), None, f"split {split!r} holds no probe"))
    for family, where in sorted(families.get(HELD_OUT_SPLIT, {}).items()):
        for split in SPLITS:
            if split != HELD_OUT_SPLIT and family in families.get(split, {}):
                file, _, line = where.rpartition(":")
                problems.append(PackProblem(file, int(line), f"family {family!r} is in {HELD_OUT_SPLIT} and in {split} "
                                            f"({families[split][family]}): fresh families must be in no other split"))
    return problems


def load_pack(root: Path) -> Skill:
    """The skill of a valid pack; SkillPackError (every problem, one a line) otherwise."""
    problems = pack_problems(root)
    if problems:
        shown = problems[:20]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise SkillPackError(f"skill pack {root} is not valid ({len(problems)} problems; `kernel-lifecycle skills "
                             f"validate {root}` lists them):\n" + "\n".join(p.text() for p in shown) + more)
    return load_skill(Path(root))
