"""Generate the demo skills (python, cobol, sql) from a seed: ``python -m kernel_lifecycle.demo.generate_skills``.

Each skill is a dozen training families (templates with varied names and constants) and five
or six held-out families, small enough that a tiny model learns it in a few minutes of CPU.
Every training family's combinations (names x constants) are enumerated, shuffled from the seed
and cut into train / dev / test / relearn by meaning, so dev, test and relearn hold new names
and constants of the train families (copies of train up to naming: in-family by design). The
held-out families give ``fresh`` and nothing else (besides the demo base's ``pretrain.jsonl``):
a fresh probe has the shape of no probe in any other split, which generation checks with
:mod:`kernel_lifecycle.boundary.overlap`. Every probe names its ``family``. The same seed
rewrites the files byte-identically. With ``check`` (the default) every canonical solution is run through
its real scorer and generation fails if any does not pass: the data must be right by the
arbiter's own standard, not by construction alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kernel_lifecycle.boundary.checks import contamination_check
from kernel_lifecycle.boundary.overlap import language_of, near_duplicates
from kernel_lifecycle.boundary.scorers import get_scorer
from kernel_lifecycle.boundary.scorers.base import Sample
from kernel_lifecycle.boundary.skills import DEMO_SKILLS_DIR, PRETRAIN_FILE

SEED = 20261123
SIZES = {"train": 600, "dev": 150, "test": 150, "fresh": 150, "relearn": 48}
IN_FAMILY = ("train", "dev", "test", "relearn")  # cut from the training families, in this order
# Per held-out family, combinations (meanings no shipped probe has) the demo base pretrains on:
# it stands for a pretrained model, which knows more than any job shows a kernel.
PRETRAIN_PER_FAMILY = 32
MAX_FRESH_SHARE = 0.10  # of fresh probes a train probe up to names, constants and formatting


@dataclass(frozen=True)
class Item:
    prompt: str
    canonical_solution: str
    test: str = ""
    entry_point: str = ""
    family: str = ""


class Family(NamedTuple):
    """A template: its name, a function from one combination (a tuple of choices) to an Item, and
    all its combinations. A combination's first choice is cosmetic (a function name, a PROGRAM-ID,
    a table); the rest is its *meaning*."""

    name: str
    make: Callable[..., Item]
    combos: list[tuple]


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


def _py_unary(family: str, names: list[str], doc: str, body: str, inputs: list[str] | None = None) -> Family:
    def make(name: str, arg: str, c: int) -> Item:
        calls = inputs or [str(i) for i in _PY_INPUTS]
        return _py_item(f"{name}_{c}", arg, doc.format(a=arg, c=c), body.format(a=arg, c=c), calls)

    return Family(family, make, list(itertools.product(names, _PY_ARGS, _PY_CONSTS)))


def _py_list(family: str, names: list[str], doc: str, body: str) -> Family:
    def make(name: str, arg: str, c: int) -> Item:
        calls = [repr(xs) for xs in _PY_LISTS]
        return _py_item(f"{name}_{c}", arg, doc.format(a=arg, c=c), body.format(a=arg, c=c), calls)

    return Family(family, make, list(itertools.product(names, _PY_LIST_ARGS, _PY_CONSTS)))


def _py_binary(family: str, names: list[str], doc: str, body: str) -> Family:
    letters = ["a", "b", "c", "m", "n", "p", "q", "x", "y", "z"]
    pairs = [(a, b) for a in letters for b in letters if a != b]

    def make(name: str, pair: tuple[str, str]) -> Item:
        a, b = pair
        calls = ["3, 8", "9, 2", "5, 5", "0, 7"]
        return _py_item(name, f"{a}, {b}", doc.format(a=a, b=b), body.format(a=a, b=b), calls)

    named = [f"{n}{i}" for n, i in itertools.product(names, range(1, 10))]
    return Family(family, make, list(itertools.product(named, pairs)))


def _py_range(family: str, names: list[str], doc: str, body: str) -> Family:
    """Two constants ``c < d``: their pairs are the meanings."""
    bounds = [(c, d) for c in _PY_CONSTS[:10] for d in _PY_CONSTS if d > c + 2]

    def make(name: str, arg: str, bound: tuple[int, int]) -> Item:
        c, d = bound
        calls = [str(i) for i in [*_PY_INPUTS, c, d, d + 1]]
        return _py_item(f"{name}_{c}_{d}", arg, doc.format(a=arg, c=c, d=d), body.format(a=arg, c=c, d=d), calls)

    return Family(family, make, list(itertools.product(names, _PY_ARGS, bounds)))


def python_families() -> list[Family]:
    words = [repr(w) for w in _PY_WORDS]
    return [
        _py_unary("add", ["add", "plus", "inc"], "Return {a} plus {c}.", "{a} + {c}"),
        _py_unary("sub", ["sub", "minus", "dec"], "Return {a} minus {c}.", "{a} - {c}"),
        _py_unary("mul", ["mul", "times", "scale"], "Return {a} times {c}.", "{a} * {c}"),
        _py_unary("divisible", ["is_div", "divisible", "multiple"], "Return True if {a} is divisible by {c}.",
                  "{a} % {c} == 0"),
        _py_unary("greater", ["above", "over", "gt"], "Return True if {a} is greater than {c}.", "{a} > {c}"),
        _py_unary("modulo", ["rem", "mod", "modulo"], "Return {a} modulo {c}.", "{a} % {c}"),
        _py_unary("repeat", ["rep", "repeat", "copies"], "Return the string {a} repeated {c} times.", "{a} * {c}",
                  inputs=words),
        _py_list("filter_greater", ["keep_big", "filter_gt", "larger"], "Return the items of {a} greater than {c}.",
                 "[e for e in {a} if e > {c}]"),
        _py_list("count_equal", ["count_of", "occurs", "tally"], "Return how many items of {a} equal {c}.",
                 "{a}.count({c})"),
        _py_list("add_each", ["shift", "add_all", "bump"], "Return {a} with {c} added to each item.",
                 "[e + {c} for e in {a}]"),
        _py_binary("max", ["bigger", "maximum", "top"], "Return the larger of {a} and {b}.", "max({a}, {b})"),
        _py_binary("min", ["smaller", "minimum", "low"], "Return the smaller of {a} and {b}.", "min({a}, {b})"),
        _py_binary("sum", ["total", "summed", "both"], "Return the sum of {a} and {b}.", "{a} + {b}"),
        _py_binary("abs_diff", ["gap", "distance", "diff"], "Return the absolute difference of {a} and {b}.",
                   "abs({a} - {b})"),
    ]


def python_fresh_families() -> list[Family]:
    """Problem shapes no train probe has: squares, ranges, reductions, indexing, averages, equality."""
    return [
        _py_unary("square_plus", ["sq_add", "square_plus", "sqp"], "Return {a} squared plus {c}.", "{a} * {a} + {c}"),
        _py_range("in_range", ["within", "in_range", "between"],
                  "Return True if {a} is at least {c} and at most {d}.", "{c} <= {a} <= {d}"),
        _py_list("sum_greater", ["sum_big", "sum_over", "total_gt"], "Return the sum of the items of {a} greater than {c}.",
                 "sum(e for e in {a} if e > {c})"),
        _py_list("first_plus", ["head_add", "first_plus", "lead"], "Return the first item of {a} plus {c}.",
                 "{a}[0] + {c}"),
        _py_binary("average", ["mean", "average", "midpoint"], "Return the average of {a} and {b}.", "({a} + {b}) / 2"),
        _py_binary("equal", ["same", "equal", "match"], "Return True if {a} equals {b}.", "{a} == {b}"),
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


_CB_PIDS = [f"{p}{n}" for p, n in itertools.product(_CB_PROGRAMS, range(1, 10))]
_CB_VAR_C = list(itertools.product(_CB_PIDS, _CB_VARS, _CB_CONSTS))
_CB_VAR_W = list(itertools.product(_CB_PIDS, _CB_VARS, _CB_WORDS))
_CB_WORD_C = list(itertools.product(_CB_PIDS, _CB_WORDS, _CB_CONSTS))


def _cb_numeric(family: str, verb: str, stmt: str) -> Family:
    def make(pid: str, var: str, c: int) -> Item:
        return _cb_item(pid, f"{verb.format(c=c, v=var)}, display {var}.",
                        [f"01 {var} PIC 9(4) VALUE 10."], [stmt.format(c=c, v=var), f"DISPLAY {var}."])

    return Family(family, make, _CB_VAR_C)


def cobol_families() -> list[Family]:
    def show_word(pid: str, word: str, c: int) -> Item:
        return _cb_item(pid, f"display {word} and {c}.", [], [f'DISPLAY "{word}" {c}.'])

    def show_two(pid: str, pair: tuple[str, str]) -> Item:
        a, b = pair
        return _cb_item(pid, f"display {a} then {b}.", [], [f'DISPLAY "{a}".', f'DISPLAY "{b}".'])

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

    pairs = [(a, b) for a in _CB_WORDS for b in _CB_WORDS if a != b]
    return [
        Family("display_word_number", show_word, _CB_WORD_C),
        Family("display_two_words", show_two, list(itertools.product(_CB_PIDS, pairs))),
        _cb_numeric("add", "add {c} to {v}", "ADD {c} TO {v}."),
        _cb_numeric("subtract", "subtract {c} from {v}", "SUBTRACT {c} FROM {v}."),
        _cb_numeric("multiply", "multiply {v} by {c}", "MULTIPLY {c} BY {v}."),
        _cb_numeric("move_number", "move {c} to {v}", "MOVE {c} TO {v}."),
        _cb_numeric("compute_times", "compute {v} times {c}", "COMPUTE {v} = {v} * {c}."),
        Family("move_text", move_text, _CB_VAR_W),
        Family("value_text", value_text, _CB_VAR_W),
        Family("if_greater", if_greater, _CB_VAR_C),
        Family("perform_varying", loop, _CB_VAR_C),
        Family("add_giving", add_giving, _CB_VAR_C),
    ]


def cobol_fresh_families() -> list[Family]:
    """Program shapes no train probe has: DIVIDE, IF/ELSE, PERFORM n TIMES, two variables, a sum COMPUTE."""

    def if_else(pid: str, var: str, c: int) -> Item:
        return _cb_item(pid, f"display YES if {var} equals {c}, else NO.", [f"01 {var} PIC 9(4) VALUE 10."],
                        [f"IF {var} = {c}", '    DISPLAY "YES"', "ELSE", '    DISPLAY "NO"', "END-IF."])

    def times(pid: str, word: str, c: int) -> Item:
        return _cb_item(pid, f"display {word} {c} times.", [],
                        [f"PERFORM {c} TIMES", f'    DISPLAY "{word}"', "END-PERFORM."])

    def add_vars(pid: str, pair: tuple[str, str], c: int) -> Item:
        a, b = pair
        return _cb_item(pid, f"{a} is {c}, add {a} to {b}, display {b}.",
                        [f"01 {a} PIC 9(4) VALUE {c}.", f"01 {b} PIC 9(4) VALUE 10."],
                        [f"ADD {a} TO {b}.", f"DISPLAY {b}."])

    var_pairs = [(a, b) for a in _CB_VARS for b in _CB_VARS if a != b]
    return [
        _cb_numeric("divide", "divide {v} by {c}", "DIVIDE {c} INTO {v}."),
        Family("if_else", if_else, _CB_VAR_C),
        Family("perform_times", times, _CB_WORD_C),
        Family("add_variables", add_vars, list(itertools.product(_CB_PIDS, var_pairs, _CB_CONSTS))),
        _cb_numeric("compute_sum", "compute {v} plus {c} times 2", "COMPUTE {v} = {v} + {c} * 2."),
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


def _sql_family(family: str, question: str, query: str, params: list, ordered: bool = False) -> Family:
    """Every schema with every parameter (a dict of placeholders; its sorted items key the fixture).

    Schemas differing only in a column the query never names are one problem (the same query),
    so the meaning keeps only the schema's parts the query uses; without parameters each schema
    is its own problem (its fixture, and so its answer, differs).
    """

    def make(schema: tuple[str, str, str], param: tuple, meaning: tuple) -> Item:
        table, text, num = schema
        fmt = dict(t=table, x=text, n=num, **dict(param))
        variant = sum(v if isinstance(v, int) else ord(v[0]) for _, v in param) if param else 0
        return _sql_item(schema, variant, question.format(**fmt), query.format(**fmt), ordered)

    def meaning(schema: tuple[str, str, str]) -> tuple:
        if params == [()]:
            return schema
        return tuple(part for part, key in zip(schema, "txn") if "{" + key + "}" in query)

    return Family(family, make, [(schema, param, (meaning(schema), param))
                                 for schema, param in itertools.product(_SQL_SCHEMAS, params)])


def sql_families() -> list[Family]:
    consts = [(("c", c),) for c in _SQL_CONSTS]
    none = [()]
    return [
        _sql_family("select_where_greater", "{x} of {t} with {n} greater than {c}", "SELECT {x} FROM {t} WHERE {n} > {c};", consts),
        _sql_family("select_where_less", "{x} of {t} with {n} less than {c}", "SELECT {x} FROM {t} WHERE {n} < {c};", consts),
        _sql_family("count_where_greater", "number of {t} with {n} greater than {c}", "SELECT COUNT(*) FROM {t} WHERE {n} > {c};", consts),
        _sql_family("count_where_less", "number of {t} with {n} less than {c}", "SELECT COUNT(*) FROM {t} WHERE {n} < {c};", consts),
        _sql_family("sum_where_greater", "sum of {n} of {t} with {n} greater than {c}", "SELECT SUM({n}) FROM {t} WHERE {n} > {c};", consts),
        _sql_family("select_two_where_at_least", "{x} and {n} of {t} with {n} at least {c}",
                    "SELECT {x}, {n} FROM {t} WHERE {n} >= {c};", consts),
        _sql_family("count", "number of {t}", "SELECT COUNT(*) FROM {t};", none),
        _sql_family("sum", "sum of {n} of {t}", "SELECT SUM({n}) FROM {t};", none),
        _sql_family("max", "largest {n} of {t}", "SELECT MAX({n}) FROM {t};", none),
        _sql_family("min", "smallest {n} of {t}", "SELECT MIN({n}) FROM {t};", none),
        _sql_family("order_by", "{x} of {t} ordered by {n}", "SELECT {x} FROM {t} ORDER BY {n};", none, True),
        _sql_family("order_by_desc", "{x} of {t} ordered by {n} descending", "SELECT {x} FROM {t} ORDER BY {n} DESC;",
                    none, True),
    ]


def sql_fresh_families() -> list[Family]:
    """Query shapes no train probe has: AVG, BETWEEN, LIMIT, LIKE, and a WHERE with an ORDER BY."""
    consts = [(("c", c),) for c in _SQL_CONSTS[:10]]
    ranges = [(("c", c), ("d", d)) for c in _SQL_CONSTS[:8] for d in _SQL_CONSTS if d >= c + 25]
    limits = [(("k", k),) for k in (1, 2, 3, 4)]
    letters = [(("l", w[0]),) for w in _SQL_WORDS]
    return [
        _sql_family("avg_where_less", "average {n} of {t} with {n} less than {c}",
                    "SELECT AVG({n}) FROM {t} WHERE {n} < {c};", [(("c", c),) for c in range(50, 100, 5)]),
        _sql_family("select_between", "{x} of {t} with {n} between {c} and {d}",
                    "SELECT {x} FROM {t} WHERE {n} BETWEEN {c} AND {d};", ranges),
        _sql_family("top_k", "{x} of the {k} {t} with the largest {n}",
                    "SELECT {x} FROM {t} ORDER BY {n} DESC LIMIT {k};", limits, True),
        _sql_family("starts_with", "{x} of {t} starting with {l}", "SELECT {x} FROM {t} WHERE {x} LIKE '{l}%';", letters),
        _sql_family("where_order_by", "{x} of {t} with {n} greater than {c} ordered by {n}",
                    "SELECT {x} FROM {t} WHERE {n} > {c} ORDER BY {n};", consts, True),
    ]


# --------------------------------------------------------------------------- assembly

SKILLS: dict[str, dict] = {
    "python": dict(scorer="python_tests", metric="pass_rate", families=python_families, fresh=python_fresh_families,
                   description="Short Python functions from a signature and docstring, judged by unit tests."),
    "cobol": dict(scorer="cobol_compile", metric="compile_rate", families=cobol_families, fresh=cobol_fresh_families,
                  description="Short COBOL programs from a one-line description, judged by GnuCOBOL's compiler."),
    "sql": dict(scorer="sql_exec", metric="pass_rate", families=sql_families, fresh=sql_fresh_families,
                description="One SQLite query from a schema and a question, judged by the rows it returns."),
}


def _quotas(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _cut(families: list[Family], sizes: dict[str, int], rng: random.Random) -> dict[str, list[Item]]:
    """Per family, cut distinct meanings into the splits of ``sizes`` (in its order), one combination each.

    A combination's first choice is cosmetic (a function name, a PROGRAM-ID, a table): two
    probes that differ only there are the same problem. Combinations are grouped by the rest
    (the variable, the constant, the word); each split takes whole meanings, and only ONE
    combination (a random cosmetic choice) of each, so no two probes of a family share a
    meaning, and train still covers every word, variable and constant many times over.
    """
    out: dict[str, list[Item]] = {split: [] for split in sizes}
    quotas = {split: _quotas(n, len(families)) for split, n in sizes.items()}
    for f, family in enumerate(families):
        groups: dict[tuple, list[tuple]] = {}
        for combo in family.combos:
            groups.setdefault(tuple(combo[1:]), []).append(combo)
        keys = list(groups)
        rng.shuffle(keys)
        need = sum(quotas[split][f] for split in sizes)
        if len(keys) < need:
            raise ValueError(f"family {family.name} has {len(keys)} distinct problems, its quotas need {need}")
        start = 0
        for split in sizes:
            n = quotas[split][f]
            out[split] += [dataclasses.replace(family.make(*rng.choice(groups[key])), family=family.name)
                           for key in keys[start : start + n]]
            start += n
    return out


def build_splits(families: list[Family], fresh_families: list[Family], rng: random.Random) -> dict[str, list[Item]]:
    """The five splits (each shuffled) and the demo base's ``pretrain`` extra.

    train, dev, test and relearn are cut from the training families, fresh and pretrain from the
    held-out ones: no fresh probe shares a family with any other split.
    """
    out = _cut(families, {split: SIZES[split] for split in IN_FAMILY}, rng)
    out |= _cut(fresh_families, {"fresh": SIZES["fresh"], "pretrain": PRETRAIN_PER_FAMILY * len(fresh_families)}, rng)
    for items in out.values():
        rng.shuffle(items)
    return out


def _check_disjoint(name: str, splits: dict[str, list[Item]]) -> None:
    seen: dict[str, str] = {}
    for split, items in splits.items():
        for item in items:
            if item.prompt in seen:
                raise ValueError(f"{name}: prompt repeated in {seen[item.prompt]} and {split}: {item.prompt!r}")
            seen[item.prompt] = split


def _check_fresh(name: str, scorer: str, splits: dict[str, list[Item]]) -> None:
    """No fresh probe has the shape of a probe of another split (a held-out family in no other form),
    and the boundary report's contamination check passes on the data as shipped."""
    fresh = [(f"fresh/{i}", it.prompt + it.canonical_solution) for i, it in enumerate(splits["fresh"])]
    for split in IN_FAMILY:
        others = [(f"{split}/{i}", it.prompt + it.canonical_solution) for i, it in enumerate(splits[split])]
        found = near_duplicates(others, fresh, language_of(scorer))
        if found:
            raise RuntimeError(f"{name}: {len(found)} fresh probes have the shape of a {split} probe, e.g. {next(iter(found.items()))}")
    result = contamination_check([it.prompt + it.canonical_solution for it in splits["train"]],
                                 {name: [text for _, text in fresh]}, languages={name: language_of(scorer)},
                                 max_share=MAX_FRESH_SHARE)
    if not result.passed:
        raise RuntimeError(f"{name}: contamination check fails: {result.detail}")
    print(f"{name}: {result.detail}")


def verify(scorer_name: str, probes: list[dict]) -> None:
    """Every canonical solution passes its real scorer, or generation fails."""
    samples = [Sample(task_id=p["task_id"], prompt=p["prompt"], completion=p["canonical_solution"],
                      test=p["test"], entry_point=p["entry_point"]) for p in probes]
    verdicts = get_scorer(scorer_name).score(samples)
    failed = [(v.task_id, v.result) for v in verdicts if not v.passed]
    if failed:
        raise RuntimeError(f"{len(failed)} canonical solutions fail {scorer_name}, e.g. {failed[:3]}")


def _records(name: str, split: str, items: list[Item]) -> list[dict]:
    return [{"task_id": f"{name}/{split}/{i}", "family": it.family, "prompt": it.prompt,
             "canonical_solution": it.canonical_solution, "test": it.test, "entry_point": it.entry_point}
            for i, it in enumerate(items)]


def generate(out_dir: Path | None = None, *, seed: int = SEED, check: bool = True) -> Path:
    """Write every skill folder under ``out_dir`` (default: the bundled demo skills); return it.

    Each folder gets ``skill.json``, one ``<split>.jsonl`` per split and ``pretrain.jsonl``.
    """
    out_dir = out_dir or DEMO_SKILLS_DIR
    for name, spec in SKILLS.items():
        rng = random.Random(f"{seed}/{name}")
        splits = build_splits(spec["families"](), spec["fresh"](), rng)
        _check_disjoint(name, splits)
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "scorer": spec["scorer"], "description": spec["description"], "metric": spec["metric"]}
        (folder / "skill.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        everything = []
        for split, items in splits.items():
            probes = _records(name, split, items)
            everything += probes
            lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in probes)
            (folder / (PRETRAIN_FILE if split == "pretrain" else f"{split}.jsonl")).write_text(lines, encoding="utf-8")
        if check:
            verify(spec["scorer"], everything)
            _check_fresh(name, spec["scorer"], splits)
    return out_dir


if __name__ == "__main__":
    print(generate())
