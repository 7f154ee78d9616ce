"""Near-duplicates of training probes, robust to renaming, re-numbering and reformatting.

A probe is reduced to a *shape*: its code's token sequence with every user identifier replaced
by a placeholder numbered in order of first appearance (so a consistent renaming gives the same
shape), every number by ``NUM``, every string literal by ``STR``, comments and layout dropped.
Keywords stay, and so do python's builtins and attribute names (``max``, ``.count``): they
are the problem, not its naming. Python is read by its own tokenizer; SQL and COBOL by a small
lexer and their keyword sets, case-insensitively as their compilers read them.

Two probes with the same shape are the same problem up to names, constants and formatting: a
held-out probe with the shape of a train probe is a near-duplicate of it. The shape is taken
over ``prompt + canonical_solution``; tests are left out, since a copy may well test other
inputs. Natural-language prose (docstrings, SQL and COBOL comments) is dropped, so rewording a
question does not disguise its query. Matching is by hash of the shape: linear in the probes.
"""

from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kernel_lifecycle.boundary.skills import Skill

# scorer -> language of the probes it judges; anything else is read by the generic lexer
LANGUAGES = {"python_tests": "python", "sql_exec": "sql", "cobol_compile": "cobol"}

_PY_KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))

SQL_KEYWORDS = frozenset("""
ABS ALL AND AS ASC AVG BETWEEN BY CASE CAST COALESCE COUNT CREATE CROSS DELETE DESC DISTINCT ELSE
END EXCEPT EXISTS FROM FULL GLOB GROUP HAVING IFNULL IN INNER INSERT INTEGER INTERSECT INTO IS JOIN
LEFT LENGTH LIKE LIMIT LOWER MAX MIN NOT NULL NUMERIC OFFSET ON OR ORDER OUTER REAL REPLACE RIGHT
ROUND SELECT SET SUBSTR SUM TABLE TEXT THEN TOTAL TRIM UNION UPDATE UPPER USING VALUES WHEN WHERE WITH
""".split())

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

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        return self.seen.setdefault(name, f"V{len(self.seen)}")


def _python_shape(text: str) -> tuple[str, ...]:
    names, out = _Names(), []
    skip = {tokenize.ENCODING, tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in skip:
            continue
        if tok.type == tokenize.NAME:
            attribute = bool(out) and out[-1] == "."
            out.append(tok.string if attribute or tok.string in _PY_KEEP else names(tok.string))
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


def _lexed_shape(text: str, pattern: re.Pattern[str], keywords: frozenset[str]) -> tuple[str, ...]:
    names, out = _Names(), []
    for match in pattern.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind == "comment":
            continue
        if kind == "string":
            out.append("STR")
        elif kind == "number":
            out.append("NUM")
        elif kind == "pic":
            # the picture string's kind (9, X, S9V9...) is structure; its lengths are constants
            out += ["PIC", re.sub(r"\d+", "N", value.split()[-1].upper())]
        elif kind in ("word", "quoted"):
            word = value.upper()
            out.append(word if kind == "word" and word in keywords else names(word.strip("\"`[]")))
        else:
            out.append(value)
    return tuple(out)


def shape(text: str, language: str) -> tuple[str, ...]:
    """The normalized token sequence of ``text`` in ``language`` (python, sql, cobol or text)."""
    if language == "python":
        try:
            return _python_shape(text)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            pass  # not python after all (or truncated): read it by the generic lexer
    if language == "cobol":
        return _lexed_shape(text, _COBOL_TOKEN, COBOL_KEYWORDS)
    return _lexed_shape(text, _SQL_TOKEN, SQL_KEYWORDS if language == "sql" else frozenset())


def language_of(scorer: str) -> str:
    return LANGUAGES.get(scorer, "text")


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


def probe_text(probe) -> str:  # noqa: ANN001
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
    from kernel_lifecycle.boundary.skills import SPLITS

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
    from kernel_lifecycle.boundary.skills import SPLITS

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
