"""Prompt formats: how a probe's prompt becomes what a base reads, and its answer what a scorer reads.

A base trained to chat (it has a chat template: SmolLM2-Instruct) reads a probe's prompt as a
user message and answers as an assistant: for a HumanEval-style prompt (a signature and a
docstring) it writes the whole function, usually in a fenced code block with prose around it.
A completion base (the demo base, the tests' tiny models) continues the prompt's text.
The scorers expect HumanEval's shape either way: ``prompt + completion`` is the program (for
compile scorers ``completion`` alone is the program). ``extract_completion`` turns a chat answer
into that shape; for a completion format it is the identity.

``PromptFormat`` is a small pydantic model, recorded as JSON in manifests and reports. A chat
format records the sha256 of the template it was made with and renders through the tokenizer it
is bound to (``prompt_format_for(tokenizer)``, or ``fmt.bind(tokenizer)`` after reading it back),
so a prompt is always rendered by the template's own code (transformers' jinja sandbox), and a
tokenizer whose template changed is refused instead of silently rendering other prompts.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import weakref
from typing import Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from kernel_lifecycle.errors import BundleError

# a fence line: ``` or ```python (any info string), alone on its line
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[ \t]*$", re.MULTILINE)
_DEF = re.compile(r"^def[ \t]+([A-Za-z_]\w*)[ \t]*\(", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^(?:def|class|import|from|async[ \t]+def|@)\b", re.MULTILINE)


def template_sha256(template: str | dict | None) -> str | None:
    if template is None:
        return None
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PromptFormat(BaseModel):
    """``chat``: the prompt is a user message rendered by the tokenizer's chat template (after an
    optional system message; None keeps the template's own default). ``completion``: the prompt
    is the text, unchanged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["chat", "completion"]
    system: str | None = None
    template_sha256: str | None = None  # chat: the template this format renders with

    _tokenizer: object = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _chat_fields_only_for_chat(self) -> PromptFormat:
        if self.kind == "completion" and (self.system is not None or self.template_sha256 is not None):
            raise ValueError("a completion format has no system message or chat template")
        return self

    def bind(self, tokenizer) -> PromptFormat:  # noqa: ANN001
        """This format, rendering with ``tokenizer``'s chat template (checked against the recorded one)."""
        if self.kind == "completion":
            return self
        template = getattr(tokenizer, "chat_template", None)
        if template is None:
            raise BundleError("this prompt format is 'chat' but the tokenizer has no chat template")
        actual = template_sha256(template)
        if self.template_sha256 is not None and actual != self.template_sha256:
            raise BundleError(
                f"the tokenizer's chat template (sha256 {actual[:12]}…) is not the one this prompt format "
                f"was recorded with ({self.template_sha256[:12]}…)"
            )
        bound = self.model_copy(update={"template_sha256": actual})
        bound._tokenizer = tokenizer
        return bound

    def render(self, prompt: str, instruction: str = "") -> str:
        """The text the model reads for ``prompt``; a chat model reads ``instruction`` (what its
        skill asks for, when it says) before it, a completion model the prompt alone."""
        if self.kind == "completion":
            return prompt
        if self._tokenizer is None:
            raise BundleError("a chat prompt format renders through a tokenizer: bind(tokenizer) it first")
        content = f"{instruction}\n\n{prompt}" if instruction else prompt
        messages = ([{"role": "system", "content": self.system}] if self.system is not None else []) + [
            {"role": "user", "content": content}
        ]
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def answer(fmt: PromptFormat, prompt: str, solution: str, *, language: str = "", program: bool = False) -> str:
    """What the model should write for ``prompt`` when ``solution`` is right: the training target.

    completion: the solution, continuing the prompt. chat: the answer a chat model gives, and
    ``extract_completion`` reads back: one fenced block holding the whole function (``prompt +
    solution``), or the whole program (``program``: the solution alone)."""
    if fmt.kind == "completion":
        return solution
    code = solution if program else prompt + solution
    return f"```{language}\n{code.rstrip(chr(10))}\n```"


# The format each loaded tokenizer speaks: set where a base or kernel is loaded (``attach``), read
# wherever a prompt is rendered or an answer read back (``format_of``): measurement, training,
# the relearning check, localization. Keyed weakly: it goes with its tokenizer.
_FORMATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def attach(tokenizer, fmt: PromptFormat) -> PromptFormat:  # noqa: ANN001
    """Bind ``fmt`` to ``tokenizer`` (its template checked) and make it the tokenizer's format."""
    bound = fmt.bind(tokenizer)
    _FORMATS[tokenizer] = bound
    return bound


def format_of(tokenizer) -> PromptFormat:  # noqa: ANN001
    """The format attached to ``tokenizer``; else its base's default (``prompt_format_for``), attached."""
    found = _FORMATS.get(tokenizer)
    return found if found is not None else attach(tokenizer, prompt_format_for(tokenizer))


def answer_end(text: str) -> int | None:
    """Where a chat answer's first code block has closed (the start of its closing fence), or
    None while it has not: generation may stop there, the rest is prose about the code.

    Only a complete pair of fences counts: a bare fence after some text may open a block
    ("Here it is:\n```") as well as close one, and that is known only once another fence follows."""
    fences = list(_FENCE.finditer(text))
    return fences[1].start() if len(fences) >= 2 else None


def stops_of(fmt: PromptFormat) -> tuple:
    """What ends a generation early in ``fmt``, besides the end-of-sequence token."""
    return (answer_end,) if fmt.kind == "chat" else ()


def prompt_format_for(tokenizer, *, system: str | None = None) -> PromptFormat:  # noqa: ANN001
    """The default format of a base: ``chat`` when its tokenizer has a chat template, else ``completion``."""
    if getattr(tokenizer, "chat_template", None) is None:
        return PromptFormat(kind="completion")
    return PromptFormat(kind="chat", system=system).bind(tokenizer)


def code_blocks(text: str) -> list[str]:
    """The code in a chat answer, one string per block.

    A fenced block is one; an opening fence never closed runs to the end (the budget ran out);
    a closing fence with code above it and no opening fence (small chat models often start
    right in the code) ends a block that began with the answer. No fence at all: the answer.
    """
    fences = list(_FENCE.finditer(text))
    if not fences:
        return [text] if text.strip() else []
    blocks: list[str] = []
    first = fences[0]
    if not first.group(1) and text[: first.start()].strip() and len(fences) % 2 == 1:
        blocks.append(text[: first.start()])  # the answer opened without a fence
        fences = fences[1:]
    for i in range(0, len(fences), 2):
        start = fences[i].end() + 1
        end = fences[i + 1].start() if i + 1 < len(fences) else len(text)
        blocks.append(text[start:end])
    return [b for b in blocks if b.strip()]


def _parses(program: str) -> bool:
    try:
        ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    return True


def _indent(code: str) -> str:
    return "".join(("    " + line) if line.strip() else line for line in code.splitlines(keepends=True))


def _without_prose(code: str) -> str:
    """``code`` with the prose around it cut, when it does not parse as it is: lines before the
    first top-level definition or import go, then trailing lines while it still does not parse.
    Unchanged when no such cut parses (a body alone never does; the scorer judges it as it is)."""
    if _parses(code):
        return code
    first = _TOP_LEVEL.search(code)
    lines = code[first.start():].splitlines(keepends=True) if first else []
    for cut in range(len(lines), 0, -1):
        shorter = "".join(lines[:cut])
        if _parses(shorter):
            return shorter
    return code


_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _definitions(code: str) -> str:
    """The imports, definitions and assignments of a program, in order, each as written; the
    example usage a chat answer appends (``print(f(1))``, an ``if __name__`` block) goes, as
    evalplus's sanitizer drops it: run at import time, a wrong example fails a right function."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    lines = code.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, _KEPT):
            decorators = getattr(node, "decorator_list", None) or []
            first = min([node.lineno] + [d.lineno for d in decorators])
            kept.append("".join(lines[first - 1 : node.end_lineno]).rstrip("\n") + "\n")
    return "\n".join(kept) if kept else code


def extract_completion(prompt: str, text: str, fmt: PromptFormat, *, program: bool = False,
                       entry_point: str | None = None) -> str:
    """What a scorer expects from the model's answer ``text`` to ``prompt``.

    completion format: ``text`` as it is (it already continues the prompt).
    chat format, ``program=True`` (compile scorers): the code block, the whole program.
    chat format, Python continuation (``prompt + result`` is the program the tests run): the
    code block (``code_blocks``; the one defining ``entry_point``, by default the prompt's last
    top-level function), prose around an unfenced answer cut, example usage dropped
    (``_definitions``), then

    - the answer repeats the prompt and goes on: what follows the prompt;
    - it defines functions (or imports): a newline and the whole block; its definition replaces
      the stub the prompt's signature and docstring make, and the prompt's imports stay in scope;
    - indented lines (a body alone): as they are; unindented statements: indented as a body.
    """
    if fmt.kind == "completion":
        return text
    blocks = code_blocks(text)
    if not blocks:
        return ""
    names = _DEF.findall(prompt)
    entry = entry_point or (names[-1] if names else None)
    defining = [b for b in blocks if entry and re.search(rf"^def[ \t]+{re.escape(entry)}[ \t]*\(", b, re.MULTILINE)]
    code = (defining or blocks)[0].strip("\n") + "\n"
    if program:
        return code
    code = _definitions(_without_prose(code))
    stem = prompt.strip()
    if stem and code.startswith(stem):
        rest = code[len(stem):]
        return rest.removeprefix("\n") if prompt.endswith("\n") else rest
    if _TOP_LEVEL.search(code):
        return ("" if prompt.endswith("\n") else "\n") + "\n" + code
    if code[:1] in (" ", "\t"):
        return code
    return _indent(code)
