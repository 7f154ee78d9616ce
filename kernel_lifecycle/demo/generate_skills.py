"""Generate the demo skills (python, cobol, sql) from a seed: ``python -m kernel_lifecycle.demo.generate_skills``.

Each skill is a dozen template families with varied names and constants, small enough that a
tiny model learns it in about a minute of CPU. Every family's combinations (names x constants)
are enumerated, shuffled from the seed and cut into train / dev / fresh, so dev and fresh hold
combinations never seen in train and fresh is disjoint from dev. The same seed rewrites the
files byte-identically. With ``check`` (the default) every canonical solution is run through
its real scorer and generation fails if any does not pass: the data must be right by the
arbiter's own standard, not by construction alone.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, SPLITS

SEED = 20261123
SIZES = {"train": 600, "dev": 150, "fresh": 150}


@dataclass(frozen=True)
class Item:
    prompt: str
    canonical_solution: str
    test: str = ""
    entry_point: str = ""


# A family: a function from one combination (a tuple of choices) to an Item, and all its combinations.
Family = tuple[Callable[..., Item], list[tuple]]


# --------------------------------------------------------------------------- python

_PY_ARGS = ["x", "n", "v", "a", "k"]
_PY_LIST_ARGS = ["xs", "nums", "vals", "items", "data"]
_PY_CONSTS = list(range(2, 21))
_PY_INPUTS = [0, 1, 4, 7, 12]
_PY_LISTS = [[3, 8, 1, 12, 5], [10, 2, 7, 7, 15], [6, 0, 9, 4, 11]]
_PY_WORDS = ["cat", "sun", "data", "ok", "tree"]


def _py_check(src: str, name: str, calls: list[str]) -> str:
    """``check(candidate)`` asserting the canonical function's own results on ``calls``."""
    scope: dict = {}
    exec(src, scope)  # our own template code, never model output
    fn = scope[name]
    lines = [f"    assert candidate({c}) == {fn(*eval('(' + c + ',)'))!r}" for c in calls]
    return "def check(candidate):\n" + "\n".join(lines) + "\n"


def _py_item(name: str, args: str, doc: str, body: str, calls: list[str]) -> Item:
    prompt = f'def {name}({args}):\n    """{doc}"""\n'
    solution = f"    return {body}\n"
    return Item(prompt, solution, _py_check(prompt + solution, name, calls), name)


def _py_unary(names: list[str], doc: str, body: str, inputs: list[str] | None = None) -> Family:
    def make(name: str, arg: str, c: int) -> Item:
        calls = inputs or [str(i) for i in _PY_INPUTS]
        return _py_item(f"{name}_{c}", arg, doc.format(a=arg, c=c), body.format(a=arg, c=c), calls)

    return make, list(itertools.product(names, _PY_ARGS, _PY_CONSTS))


def _py_list(names: list[str], doc: str, body: str) -> Family:
    def make(name: str, arg: str, c: int) -> Item:
        calls = [repr(xs) for xs in _PY_LISTS]
        return _py_item(f"{name}_{c}", arg, doc.format(a=arg, c=c), body.format(a=arg, c=c), calls)

    return make, list(itertools.product(names, _PY_LIST_ARGS, _PY_CONSTS))


def _py_binary(names: list[str], doc: str, body: str) -> Family:
    letters = ["a", "b", "c", "m", "n", "p", "q", "x", "y", "z"]
    pairs = [(a, b) for a in letters for b in letters if a != b]

    def make(name: str, pair: tuple[str, str]) -> Item:
        a, b = pair
        calls = ["3, 8", "9, 2", "5, 5", "0, 7"]
        return _py_item(name, f"{a}, {b}", doc.format(a=a, b=b), body.format(a=a, b=b), calls)

    named = [f"{n}{i}" for n, i in itertools.product(names, range(1, 10))]
    return make, list(itertools.product(named, pairs))


def python_families() -> list[Family]:
    words = [repr(w) for w in _PY_WORDS]
    return [
        _py_unary(["add", "plus", "inc"], "Return {a} plus {c}.", "{a} + {c}"),
        _py_unary(["sub", "minus", "dec"], "Return {a} minus {c}.", "{a} - {c}"),
        _py_unary(["mul", "times", "scale"], "Return {a} times {c}.", "{a} * {c}"),
        _py_unary(["is_div", "divisible", "multiple"], "Return True if {a} is divisible by {c}.",
                  "{a} % {c} == 0"),
        _py_unary(["above", "over", "gt"], "Return True if {a} is greater than {c}.", "{a} > {c}"),
        _py_unary(["rem", "mod", "modulo"], "Return {a} modulo {c}.", "{a} % {c}"),
        _py_unary(["rep", "repeat", "copies"], "Return the string {a} repeated {c} times.", "{a} * {c}",
                  inputs=words),
        _py_list(["keep_big", "filter_gt", "larger"], "Return the items of {a} greater than {c}.",
                 "[e for e in {a} if e > {c}]"),
        _py_list(["count_of", "occurs", "tally"], "Return how many items of {a} equal {c}.", "{a}.count({c})"),
        _py_list(["shift", "add_all", "bump"], "Return {a} with {c} added to each item.",
                 "[e + {c} for e in {a}]"),
        _py_binary(["bigger", "maximum", "top"], "Return the larger of {a} and {b}.", "max({a}, {b})"),
        _py_binary(["smaller", "minimum", "low"], "Return the smaller of {a} and {b}.", "min({a}, {b})"),
        _py_binary(["total", "summed", "both"], "Return the sum of {a} and {b}.", "{a} + {b}"),
        _py_binary(["gap", "distance", "diff"], "Return the absolute difference of {a} and {b}.",
                   "abs({a} - {b})"),
    ]


# --------------------------------------------------------------------------- cobol

_CB_PROGRAMS = ["ALPHA", "BRAVO", "DELTA", "KILO", "LIMA", "OSCAR", "TANGO", "ZULU"]
_CB_VARS = ["WS-TOTAL", "WS-COUNT", "WS-NUM", "WS-SUM", "WS-AMT", "WS-QTY", "WS-RATE", "WS-SIZE"]
_CB_WORDS = ["HELLO", "WORLD", "READY", "DONE", "START", "OK", "GO", "YES", "NO", "BYE", "WAIT", "PAID"]
_CB_CONSTS = [2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 20, 25, 30, 40, 50]


def _cobol(pid: str, storage: list[str], body: list[str]) -> str:
    lines = ["IDENTIFICATION DIVISION.", f"PROGRAM-ID. {pid}."]
    if storage:
        lines += ["DATA DIVISION.", "WORKING-STORAGE SECTION.", *storage]
    lines += ["PROCEDURE DIVISION.", *(f"    {line}" for line in body), "    STOP RUN."]
    return "\n".join(lines) + "\n"


def _cb_item(pid: str, description: str, storage: list[str], body: list[str]) -> Item:
    # The prompt is a free-format comment line (``*>``), the format cobol_compile compiles
    # (``-free``), so prompt + program is itself a valid source file; the scorer compiles the
    # completion, which is the whole program.
    return Item(f"*> Program {pid}: {description}\n", _cobol(pid, storage, body))


def cobol_families() -> list[Family]:
    def show_word(pid: str, word: str, c: int) -> Item:
        return _cb_item(pid, f"display {word} and {c}.", [], [f'DISPLAY "{word}" {c}.'])

    def show_two(pid: str, pair: tuple[str, str]) -> Item:
        a, b = pair
        return _cb_item(pid, f"display {a} then {b}.", [], [f'DISPLAY "{a}".', f'DISPLAY "{b}".'])

    def numeric(verb: str, stmt: str) -> Callable[..., Item]:
        def make(pid: str, var: str, c: int) -> Item:
            return _cb_item(pid, f"{verb.format(c=c, v=var)}, display {var}.",
                            [f"01 {var} PIC 9(4) VALUE 10."], [stmt.format(c=c, v=var), f"DISPLAY {var}."])

        return make

    def move_text(pid: str, var: str, word: str) -> Item:
        return _cb_item(pid, f"move {word} to {var}, display {var}.", [f"01 {var} PIC X(10)."],
                        [f'MOVE "{word}" TO {var}.', f"DISPLAY {var}."])

    def value_text(pid: str, var: str, word: str) -> Item:
        return _cb_item(pid, f"{var} holds {word}, display it.", [f'01 {var} PIC X(10) VALUE "{word}".'],
                        [f"DISPLAY {var}."])

    def if_greater(pid: str, var: str, c: int) -> Item:
        return _cb_item(pid, f"display BIG if {var} is greater than {c}.", [f"01 {var} PIC 9(4) VALUE 10."],
                        [f"IF {var} > {c}", '    DISPLAY "BIG"', "END-IF."])

    def loop(pid: str, var: str, c: int) -> Item:
        return _cb_item(pid, f"display {var} from 1 to {c}.", [f"01 {var} PIC 9(4) VALUE 0."],
                        [f"PERFORM VARYING {var} FROM 1 BY 1 UNTIL {var} > {c}", f"    DISPLAY {var}",
                         "END-PERFORM."])

    def add_giving(pid: str, var: str, c: int) -> Item:
        return _cb_item(pid, f"add {c} to {var} giving WS-OUT, display WS-OUT.",
                        [f"01 {var} PIC 9(4) VALUE 10.", "01 WS-OUT PIC 9(4) VALUE 0."],
                        [f"ADD {c} TO {var} GIVING WS-OUT.", "DISPLAY WS-OUT."])

    pids = [f"{p}{n}" for p, n in itertools.product(_CB_PROGRAMS, range(1, 10))]
    pairs = [(a, b) for a in _CB_WORDS for b in _CB_WORDS if a != b]
    var_c = [(p, v, c) for p, v, c in itertools.product(pids, _CB_VARS, _CB_CONSTS)]
    var_w = [(p, v, w) for p, v, w in itertools.product(pids, _CB_VARS, _CB_WORDS)]
    return [
        (show_word, list(itertools.product(pids, _CB_WORDS, _CB_CONSTS))),
        (show_two, list(itertools.product(pids, pairs))),
        (numeric("add {c} to {v}", "ADD {c} TO {v}."), var_c),
        (numeric("subtract {c} from {v}", "SUBTRACT {c} FROM {v}."), var_c),
        (numeric("multiply {v} by {c}", "MULTIPLY {c} BY {v}."), var_c),
        (numeric("move {c} to {v}", "MOVE {c} TO {v}."), var_c),
        (numeric("compute {v} times {c}", "COMPUTE {v} = {v} * {c}."), var_c),
        (move_text, var_w),
        (value_text, var_w),
        (if_greater, var_c),
        (loop, var_c),
        (add_giving, var_c),
    ]


# --------------------------------------------------------------------------- sql

# schemas are (table, text column, number column): 8 x 3 x 4 = 96 of them
_SQL_SCHEMAS = list(itertools.product(
    ["items", "staff", "cities", "books", "teams", "shops", "songs", "boats"],
    ["name", "title", "label"],
    ["price", "size", "score", "rank"],
))
_SQL_WORDS = ["ash", "bay", "cod", "dew", "elm", "fig", "gum", "hut", "ivy", "jay"]
_SQL_CONSTS = list(range(10, 100, 5))


def _sql_fixture(table: str, text: str, num: str, variant: int) -> str:
    rng = random.Random(f"{table}/{text}/{num}/{variant}")
    words = rng.sample(_SQL_WORDS, 6)
    values = rng.sample(range(5, 100), 6)  # distinct, so ORDER BY has one right answer
    rows = ", ".join(f"({i + 1}, '{w}', {v})" for i, (w, v) in enumerate(zip(words, values)))
    return f"CREATE TABLE {table}(id INTEGER, {text} TEXT, {num} INTEGER);\nINSERT INTO {table} VALUES {rows};\n"


def _sql_item(schema: tuple[str, str, str], variant: int, question: str, query: str, ordered: bool) -> Item:
    table, text, num = schema
    fixture = _sql_fixture(table, text, num, variant)
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(fixture)
        expected = [list(row) for row in con.execute(query).fetchall()]
    finally:
        con.close()
    prompt = f"-- table {table}({text} TEXT, {num} INTEGER)\n-- {question}\n"
    test = json.dumps({"fixture": fixture, "expected": expected, "ordered": ordered}, sort_keys=True)
    return Item(prompt, query + "\n", test)


def sql_families() -> list[Family]:
    def with_const(question: str, query: str, ordered: bool = False) -> Family:
        def make(schema: tuple[str, str, str], c: int, meaning: tuple) -> Item:
            table, text, num = schema
            fmt = dict(t=table, x=text, n=num, c=c)
            return _sql_item(schema, c, question.format(**fmt), query.format(**fmt), ordered)

        # When the query never names the text column, schemas differing only there are one
        # problem (the contamination check flags them), so the meaning leaves it out.
        uses_text = "{x}" in query
        return make, [(schema, c, schema if uses_text else (schema[0], schema[2]))
                      for schema, c in itertools.product(_SQL_SCHEMAS, _SQL_CONSTS)]

    def no_const(question: str, query: str, ordered: bool = False) -> Family:
        def make(schema: tuple[str, str, str], variant: int) -> Item:
            table, text, num = schema
            fmt = dict(t=table, x=text, n=num)
            return _sql_item(schema, variant, question.format(**fmt), query.format(**fmt), ordered)

        return make, [(schema, i) for i, schema in enumerate(_SQL_SCHEMAS)]

    return [
        with_const("{x} of {t} with {n} greater than {c}", "SELECT {x} FROM {t} WHERE {n} > {c};"),
        with_const("{x} of {t} with {n} less than {c}", "SELECT {x} FROM {t} WHERE {n} < {c};"),
        with_const("number of {t} with {n} greater than {c}", "SELECT COUNT(*) FROM {t} WHERE {n} > {c};"),
        with_const("number of {t} with {n} less than {c}", "SELECT COUNT(*) FROM {t} WHERE {n} < {c};"),
        with_const("sum of {n} of {t} with {n} greater than {c}", "SELECT SUM({n}) FROM {t} WHERE {n} > {c};"),
        with_const("{x} and {n} of {t} with {n} at least {c}", "SELECT {x}, {n} FROM {t} WHERE {n} >= {c};"),
        no_const("number of {t}", "SELECT COUNT(*) FROM {t};"),
        no_const("sum of {n} of {t}", "SELECT SUM({n}) FROM {t};"),
        no_const("largest {n} of {t}", "SELECT MAX({n}) FROM {t};"),
        no_const("smallest {n} of {t}", "SELECT MIN({n}) FROM {t};"),
        no_const("{x} of {t} ordered by {n}", "SELECT {x} FROM {t} ORDER BY {n};", True),
        no_const("{x} of {t} ordered by {n} descending", "SELECT {x} FROM {t} ORDER BY {n} DESC;", True),
    ]


# --------------------------------------------------------------------------- assembly

SKILLS: dict[str, dict] = {
    "python": dict(scorer="python_tests", metric="pass_rate", families=python_families,
                   description="Short Python functions from a signature and docstring, judged by unit tests."),
    "cobol": dict(scorer="cobol_compile", metric="compile_rate", families=cobol_families,
                  description="Short COBOL programs from a one-line description, judged by GnuCOBOL's compiler."),
    "sql": dict(scorer="sql_exec", metric="pass_rate", families=sql_families,
                description="One SQLite query from a schema and a question, judged by the rows it returns."),
}


def _quotas(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def build_splits(families: list[Family], rng: random.Random) -> dict[str, list[Item]]:
    """Per family: cut train | dev | fresh by *meaning*, then shuffle each split.

    A combination's first choice is cosmetic (a function name, a PROGRAM-ID, a table): two
    probes that differ only there are the same problem. Combinations are grouped by the rest
    (the variable, the constant, the word); each split takes whole meanings, and only ONE
    combination (a random cosmetic choice) of each, so a dev or fresh probe is never a renamed
    training probe, and train still covers every word, variable and constant many times over
    (taking whole groups instead once left train with a single word for a COBOL family, and
    dev with words train never showed).
    """
    out: dict[str, list[Item]] = {split: [] for split in SPLITS}
    quotas = {split: _quotas(SIZES[split], len(families)) for split in SPLITS}
    for f, (make, combos) in enumerate(families):
        groups: dict[tuple, list[tuple]] = {}
        for combo in combos:
            groups.setdefault(tuple(combo[1:]), []).append(combo)
        keys = list(groups)
        rng.shuffle(keys)
        need = sum(quotas[split][f] for split in SPLITS)
        if len(keys) < need:
            raise ValueError(f"family {f} has {len(keys)} distinct problems, its quotas need {need}")
        start = 0
        for split in SPLITS:
            n = quotas[split][f]
            out[split] += [make(*rng.choice(groups[key])) for key in keys[start : start + n]]
            start += n
    for split in SPLITS:
        rng.shuffle(out[split])
    return out


def _check_disjoint(name: str, splits: dict[str, list[Item]]) -> None:
    seen: dict[str, str] = {}
    for split in SPLITS:
        for item in splits[split]:
            if item.prompt in seen:
                raise ValueError(f"{name}: prompt repeated in {seen[item.prompt]} and {split}: {item.prompt!r}")
            seen[item.prompt] = split


def _check_contamination(name: str, splits: dict[str, list[Item]]) -> None:
    """The boundary report's contamination check must pass on the data as shipped."""
    from kernel_lifecycle.boundary.checks import contamination_check

    result = contamination_check(
        [it.prompt + it.canonical_solution for it in splits["train"]],
        {name: [it.prompt + it.canonical_solution for split in ("dev", "fresh") for it in splits[split]]},
    )
    if not result.passed:
        raise RuntimeError(f"{name}: contamination check fails: {result.detail}")
    print(f"{name}: {result.detail}")


def verify(scorer_name: str, probes: list[dict]) -> None:
    """Every canonical solution passes its real scorer, or generation fails."""
    from kernel_lifecycle.boundary.scorers import get_scorer
    from kernel_lifecycle.boundary.scorers.base import Sample

    samples = [Sample(task_id=p["task_id"], prompt=p["prompt"], completion=p["canonical_solution"],
                      test=p["test"], entry_point=p["entry_point"]) for p in probes]
    verdicts = get_scorer(scorer_name).score(samples)
    failed = [(v.task_id, v.result) for v in verdicts if not v.passed]
    if failed:
        raise RuntimeError(f"{len(failed)} canonical solutions fail {scorer_name}, e.g. {failed[:3]}")


def generate(out_dir: Path | None = None, *, seed: int = SEED, check: bool = True) -> Path:
    """Write every skill folder under ``out_dir`` (default: the bundled demo skills); return it."""
    out_dir = out_dir or DEMO_SKILLS_DIR
    for name, spec in SKILLS.items():
        rng = random.Random(f"{seed}/{name}")
        splits = build_splits(spec["families"](), rng)
        _check_disjoint(name, splits)
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "scorer": spec["scorer"], "description": spec["description"], "metric": spec["metric"]}
        (folder / "skill.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        everything = []
        for split in SPLITS:
            probes = [
                {"task_id": f"{name}/{split}/{i}", "prompt": it.prompt, "canonical_solution": it.canonical_solution,
                 "test": it.test, "entry_point": it.entry_point}
                for i, it in enumerate(splits[split])
            ]
            everything += probes
            lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in probes)
            (folder / f"{split}.jsonl").write_text(lines, encoding="utf-8")
        if check:
            verify(spec["scorer"], everything)
            _check_contamination(name, splits)
    return out_dir


if __name__ == "__main__":
    print(generate())
