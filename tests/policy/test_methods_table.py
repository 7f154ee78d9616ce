"""Method options live in one place, the method's own dataclass; policies and job configs are
checked against it without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kernel_lifecycle.unlearning import METHODS, option_names, option_problems


def test_options_are_the_method_dataclass_fields():
    assert option_names("npo") == ("beta", "retain_weight")
    assert option_names("grad_diff") == ("retain_weight",)
    assert option_names("grad_ascent") == ()
    assert option_names("negation") == ("negation_weight",)
    assert option_names("simnpo") == ("beta", "margin", "retain_weight")
    assert option_names("rmu") == ("layer", "steering_scale", "retain_weight", "vector_seed")
    assert option_names("undo") == ("beta", "retain_weight", "perturb", "distill_steps")
    assert set(METHODS) == {"npo", "grad_diff", "grad_ascent", "negation", "simnpo", "rmu", "undo"}


@pytest.mark.parametrize(
    ("method", "options", "problem"),
    [
        ("npo", {"beta": 0}, "greater than 0"),
        ("npo", {"beta": "high"}, "valid number"),
        ("grad_diff", {"beta": 0.1}, "beta is not an option of method 'grad_diff' (its options: retain_weight)"),
        ("negation", {"negation_weight": -1}, "greater than 0"),
        ("rmu", {"layer": -1}, "greater than or equal to 0"),
        ("undo", {"perturb": 1.5}, "less than or equal to 1"),
    ],
)
def test_bad_options_are_named(method, options, problem):
    assert any(problem in message for _, message in option_problems(method, options))


def test_checking_a_policy_does_not_import_torch():
    code = (
        "import sys\n"
        "from kernel_lifecycle.unlearning import option_problems, method_class\n"
        "assert option_problems('npo', {'beta': 0.2}) == []\n"
        "assert method_class('npo').needs_retain and not method_class('negation').needs_retain\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
