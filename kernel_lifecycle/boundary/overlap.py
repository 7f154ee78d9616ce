"""Near-duplicates of training probes, robust to renaming, re-numbering and reformatting.

A probe is reduced to a *shape*: its code's token sequence with every user identifier replaced
by a placeholder numbered in order of first appearance (so a consistent renaming gives the same
shape), every number by ``NUM``, every string literal by ``STR``, comments and layout dropped.
Keywords stay, and so do python's builtins and library attribute names (``max``, ``.count``):
they are the problem, not its naming. What the code binds itself is naming whatever its
spelling: a parameter ``list``, a loop variable ``_``, a method of its own class, an
attribute it sets (numbered apart from plain names), and in SQL a column called ``total`` or
``count`` (function keywords are keywords only when called). Python that parses is read as
``ast.unparse`` writes it (no layout, quoting or redundant parentheses left), then by its own
tokenizer; SQL and COBOL by a small lexer and their keyword sets, case-insensitively as their
compilers read them.

Two probes with the same shape are the same problem up to names, constants and formatting: a
held-out probe with the shape of a train probe is a near-duplicate of it. The shape is taken
over ``prompt + canonical_solution``; tests are left out, since a copy may well test other
inputs. Natural-language prose (docstrings, SQL and COBOL comments) is dropped, so rewording a
question does not disguise its query. Matching is by hash of the shape: linear in the probes.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kernel_lifecycle.boundary.scorers import answer_shape
from kernel_lifecycle.boundary.skills import SPLITS, Probe, Skill
from kernel_lifecycle.errors import KernelLifecycleError

_FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", -1)
_PY_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))

SQL_KEYWORDS = frozenset("""
ABS ALL AND AS ASC AVG BETWEEN BY CASE CAST COALESCE COUNT CREATE CROSS DELETE DESC DISTINCT ELSE
END EXCEPT EXISTS FROM FULL GLOB GROUP HAVING IFNULL IN INNER INSERT INTEGER INTERSECT INTO IS JOIN
LEFT LENGTH LIKE LIMIT LOWER MAX MIN NOT NULL NUMERIC OFFSET ON OR ORDER OUTER REAL REPLACE RIGHT
ROUND SELECT SET SUBSTR SUM TABLE TEXT THEN TOTAL TRIM UNION UPDATE UPPER USING VALUES WHEN WHERE WITH
""".split())

# SQL_KEYWORDS that are functions: keywords when called, names otherwise
SQL_FUNCTIONS = frozenset("ABS AVG CAST COALESCE COUNT IFNULL LENGTH LOWER MAX MIN REPLACE ROUND SUBSTR SUM TOTAL "
                          "TRIM UPPER".split())

COBOL_KEYWORDS = frozenset("""
ACCEPT ADD ADVANCING AFTER ALL ALSO ALPHABETIC AND ANY ARE AREA AS ASCENDING AT AUTHOR BEFORE BINARY
BLANK BY CALL CHARACTER CHARACTERS CLOSE COMP COMP-3 COMPUTATIONAL COMPUTE CONFIGURATION CONTINUE
CORRESPONDING COUNT DATA DATE DAY DELETE DELIMITED DELIMITER DEPENDING DESCENDING DISPLAY DIVIDE
DIVISION DOWN ELSE END END-ADD END-COMPUTE END-DIVIDE END-EVALUATE END-IF END-MULTIPLY END-PERFORM
END-READ END-STRING END-SUBTRACT ENVIRONMENT EQUAL EVALUATE EXIT FALSE FD FILE FILE-CONTROL FILLER
FOR FROM FUNCTION GIVING GO GOBACK GREATER IDENTIFICATION IF IN INDEXED INITIALIZE INPUT
INPUT-OUTPUT INSPECT INTO INVALID IS JUSTIFIED KEY LEADING LENGTH LESS LINKAGE MOD MOVE MULTIPLY
NEGATIVE NEXT NO NOT NUMERIC OCCURS OF OFF ON OPEN OR ORGANIZATION OTHER OUTPUT PARAGRAPH PERFORM
PIC PICTURE POINTER POSITIVE PROCEDURE PROGRAM PROGRAM-ID READ RECORD REDEFINES REMAINDER REPLACING
RETURN REWRITE ROUNDED RUN SECTION SELECT SENTENCE SEPARATE SIGN SIZE SPACE SPACES STOP STRING
SUBTRACT TALLYING THAN THEN THROUGH THRU TIMES TO TRAILING TRUE UNSTRING UNTIL UP UPON USAGE USING
VALUE VALUES VARYING WHEN WITH WORKING-STORAGE WRITE ZERO ZEROES ZEROS
""".split())

_SQL_TOKEN = re.compile(r"""
    (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><>|!=|<=|>=|==|\|\||\S)
""", re.VERBOSE | re.DOTALL)

_COBOL_TOKEN = re.compile(r"""
    (?P<comment>\*>[^\n]*)
  | (?P<pic>\b(?:PIC|PICTURE)(?:\s+IS)?\s+[^\s.]+(?:\.[^\s.]+)*)
  | (?P<string>"(?:[^"]|"")*"|'(?:[^']|'')*')
  | (?P<number>[+-]?\d+(?:\.\d+)?(?![A-Za-z0-9-]))
  | (?P<word>[A-Za-z0-9][A-Za-z0-9-]*)
  | (?P<op><=|>=|\*\*|\S)
""", re.VERBOSE | re.MULTILINE | re.IGNORECASE)


class _Names:
    """Placeholders for identifiers, numbered in order of first appearance."""

    def __init__(self, prefix: str = "V") -> None:
        self.prefix = prefix
        self.seen: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        return self.seen.setdefault(name, f"{self.prefix}{len(self.seen)}")


def _python_bound(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names and the attribute names the code itself binds: its own naming.

    A parameter called ``list`` or ``input``, a loop variable ``_``, a variable ``match``, a
    method ``area`` of its own class or an attribute ``self.total`` are names the author
    chose, and a renamed copy may call them anything: they are placeholders like any other
    name, even where a builtin, soft keyword or library method has the same spelling."""
    names: set[str] = set()
    attributes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):  # methods and class attributes are attributes
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        attributes.add(item.name)
                    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        attributes |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            attributes.add(node.attr)
    return names - set(keyword.kwlist), attributes


def _python_shape(text: str) -> tuple[str, ...]:
    """Code that parses is read as ``ast.unparse`` writes it: one layout, one quoting, no
    comments, no redundant parentheses (formatting of any kind is gone); code that does not
    (a truncated generation) is read as written, builtins and attributes kept as spelled."""
    bound: set[str] = set()
    bound_attributes: set[str] = set()
    try:
        tree = ast.parse(text)
        text = ast.unparse(tree)
        bound, bound_attributes = _python_bound(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    # attributes are numbered apart: a copy may rename ``total`` and keep ``self.total``
    names, attribute_names, out = _Names(), _Names("A"), []
    skip = {tokenize.ENCODING, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in skip:
            continue
        if tok.type == _FSTRING_MIDDLE:  # 3.12+ splits f-strings: their text is a literal
            out.append("STR")
            continue
        if tok.type == tokenize.NAME:
            word = tok.string
            if bool(out) and out[-1] == ".":  # an attribute: the code's own, or an API's
                out.append(attribute_names(word) if word in bound_attributes else word)
            else:
                out.append(word if word in _PY_KEEP and word not in bound else names(word))
        elif tok.type == tokenize.NUMBER:
            out.append("NUM")
        elif tok.type == tokenize.STRING:
            out.append("STR")
        elif tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            out.append(tokenize.tok_name[tok.type])
        else:
            out.append(tok.string)
    # layout around the end of the text (a trailing newline or not) is formatting
    while out and out[-1] in ("NEWLINE", "DEDENT"):
        out.pop()
    return tuple(out)


def _lexed_shape(text: str, pattern: re.Pattern[str], keywords: frozenset[str],
                 functions: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """``functions``: keywords that are keywords only when called (``COUNT(``); elsewhere the
    word names something (a column called ``total`` or ``count``), and a copy may rename it."""
    names, out = _Names(), []
    tokens = [(m.lastgroup, m.group()) for m in pattern.finditer(text) if m.lastgroup != "comment"]
    for i, (kind, value) in enumerate(tokens):
        if kind == "word" and value.upper() in functions and tokens[i + 1:i + 2] != [("op", "(")]:
            kind = "quoted"  # a name spelled like a function
        if kind == "string":
            out.append("STR")
        elif kind == "number":
            out.append("NUM")
        elif kind == "pic":
            out += ["PIC", _picture(value.split()[-1])]
        elif kind in ("word", "quoted"):
            word = value.upper()
            out.append(word if kind == "word" and word in keywords else names(word.strip("\"`[]")))
        else:
            out.append(value)
    return tuple(out)


def _picture(picture: str) -> str:
    """A COBOL picture's kind, its lengths being constants: ``9(4)``, ``9999`` and ``9`` are
    all ``9(N)``; ``S9(3)V99`` and ``S999V9(2)`` are ``S(N)9(N)V(N)9(N)``. Outside a repeat
    count a digit is a digit position (a renumbered copy may have turned ``9`` into ``28``)."""
    positions = re.sub(r"\d", "9", re.sub(r"\(\d+\)", "", picture.upper()))
    return re.sub(r"(.)\1*", lambda m: m.group(1) + "(N)", positions)


def shape(text: str, language: str) -> tuple[str, ...]:
    """The normalized token sequence of ``text`` in ``language`` (python, sql, cobol or text)."""
    if language == "python":
        try:
            return _python_shape(text)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            pass  # not python after all (or truncated): read it by the generic lexer
    if language == "cobol":
        return _lexed_shape(text, _COBOL_TOKEN, COBOL_KEYWORDS)
    if language == "sql":
        return _lexed_shape(text, _SQL_TOKEN, SQL_KEYWORDS, SQL_FUNCTIONS)
    return _lexed_shape(text, _SQL_TOKEN, frozenset())


def language_of(scorer: str) -> str:
    """The language a scorer's probes are read as (``Scorer.language``); ``text`` (the generic
    lexer) when it declares none or is not a registered scorer."""
    try:
        return answer_shape(scorer)[0] or "text"
    except KernelLifecycleError:
        return "text"


class ShapeIndex:
    """Train texts by shape: ``match(text)`` is the id of a train text with the same shape, or None."""

    def __init__(self, train: Iterable[tuple[str, str]], language: str) -> None:
        self.language = language
        self._ids: dict[tuple[str, ...], str] = {}
        for train_id, text in train:
            self._ids.setdefault(shape(text, language), train_id)

    def match(self, text: str) -> str | None:
        return self._ids.get(shape(text, self.language))


def near_duplicates(
    train: Iterable[tuple[str, str]], probes: Iterable[tuple[str, str]], language: str
) -> dict[str, str]:
    """``{probe id: train id}`` for every probe with the shape of a train text (the first such).

    Both arguments are ``(id, text)`` pairs; texts are read as ``language``.
    """
    index = ShapeIndex(train, language)
    return {probe_id: found for probe_id, text in probes if (found := index.match(text)) is not None}


def probe_text(probe: Probe) -> str:
    """What a probe's shape is taken over: its prompt and its reference solution."""
    return probe.prompt + probe.canonical_solution


@dataclass(frozen=True)
class NearDuplicate:
    skill: str
    split: str
    task_id: str
    near_duplicate_of: str  # the train probe's task id
    family: str = ""
    train_family: str = ""


def skill_overlap(skill: Skill, splits: Sequence[str] | None = None) -> list[NearDuplicate]:
    """Probes of ``skill``'s held-out splits (every split but train by default) with a train probe's shape."""
    train = {p.task_id: p for p in skill.probes("train")}
    index = ShapeIndex(((i, probe_text(p)) for i, p in train.items()), language_of(skill.scorer))
    out = []
    for split in splits or [s for s in SPLITS if s != "train"]:
        for probe in skill.probes(split):  # type: ignore[arg-type]
            found = index.match(probe_text(probe))
            if found is not None:
                out.append(NearDuplicate(skill.name, split, probe.task_id, found, probe.family, train[found].family))
    return out


def overlap_counts(skills: Mapping[str, Skill], found: Iterable[NearDuplicate]) -> list[dict]:
    """Per skill and held-out split: how many probes are near-duplicates of train, of how many."""
    flagged: dict[tuple[str, str], int] = {}
    for dup in found:
        flagged[dup.skill, dup.split] = flagged.get((dup.skill, dup.split), 0) + 1
    rows = []
    for name, skill in skills.items():
        for split in SPLITS:
            if split == "train":
                continue
            total = len(skill.probes(split))  # type: ignore[arg-type]
            n = flagged.get((name, split), 0)
            rows.append({"skill": name, "split": split, "near_duplicates": n, "probes": total,
                         "share": n / total if total else 0.0})
    return rows
