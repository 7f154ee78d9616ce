"""How a probe meets a kernel: its prompt in the kernel's prompt format, the model's answer read
back into what the skill's scorer runs, and the answer a job trains on.

The format is the one attached to the kernel's tokenizer (``models.prompting.format_of``: the
version's recorded format, else its base's default: chat when the base has a chat template).
With a completion format (the demo base) all three are the identity, as they always were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel_lifecycle.boundary.scorers import answer_shape
from kernel_lifecycle.boundary.skills import Probe, Skill
from kernel_lifecycle.models.prompting import answer, extract_completion, format_of, stops_of

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def language(scorer: str) -> str:
    """The code fence's language of a scorer's answers (empty when it has none)."""
    return answer_shape(scorer)[0]


def is_program(scorer: str) -> bool:
    """Whether ``scorer`` judges ``completion`` alone as the whole program (else it continues
    the prompt: ``prompt + completion`` is the program)."""
    return answer_shape(scorer)[1]


def answer_kind(skill: Skill) -> dict[str, str | bool]:
    """``encode_probes``' keywords for ``skill``: its answers' language, whole program or not, and
    the instruction a chat base reads before each probe."""
    return {"language": language(skill.scorer), "program": is_program(skill.scorer), "instruction": skill.instruction}


def render(tokenizer: PreTrainedTokenizerBase, probe: Probe, instruction: str = "") -> str:
    """The text the kernel reads for ``probe`` (after its skill's ``instruction``, in a chat format)."""
    return format_of(tokenizer).render(probe.prompt, instruction)


def stops(tokenizer: PreTrainedTokenizerBase) -> tuple:
    """Where the kernel's answers end early (a chat answer: once its code block closed)."""
    return stops_of(format_of(tokenizer))


def completion(tokenizer: PreTrainedTokenizerBase, probe: Probe, text: str, scorer: str) -> str:
    """What ``scorer`` runs of the kernel's answer ``text`` to ``probe``."""
    return extract_completion(probe.prompt, text, format_of(tokenizer), program=is_program(scorer),
                              entry_point=probe.entry_point or None)


def target(tokenizer: PreTrainedTokenizerBase, probe: Probe, scorer: str) -> str:
    """The answer a job trains the kernel to give to ``probe`` (its canonical solution, formatted)."""
    return answer(format_of(tokenizer), probe.prompt, probe.canonical_solution, language=language(scorer),
                  program=is_program(scorer))
