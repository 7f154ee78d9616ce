from __future__ import annotations

import subprocess
import sys

import pytest

from kernel_lifecycle.errors import JobError, NotFoundError
from kernel_lifecycle.unlearning import DEFAULT_METHOD, METHODS, check_method, get_method


def test_known_methods_and_default():
    assert METHODS == ("npo", "grad_diff", "grad_ascent", "negation", "simnpo", "rmu", "undo")
    assert DEFAULT_METHOD == "npo"
    for name in METHODS:
        method = get_method(name)
        assert method.name == name
        assert hasattr(method, "run")
    assert get_method("grad_ascent").needs_retain is False


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(NotFoundError) as info:
        get_method("scrub")
    message = str(info.value)
    assert "unknown unlearning method 'scrub'" in message
    for name in METHODS:
        assert name in message
    with pytest.raises(NotFoundError):
        check_method("NPO")


def test_options_are_checked_by_name():
    assert get_method("npo", beta=0.5, retain_weight=2.0).beta == 0.5
    assert get_method("negation", negation_weight=0.5).negation_weight == 0.5
    with pytest.raises(JobError, match="beta is not an option of method .negation. .its options: negation_weight"):
        get_method("negation", beta=0.1)
    assert get_method("rmu", layer=2.0).layer == 2  # a policy's options arrive as floats
    with pytest.raises(JobError, match="layer"):
        get_method("rmu", layer=1.5)
    with pytest.raises(JobError, match="perturb"):
        get_method("undo", perturb=2.0)


def test_names_are_checked_without_importing_torch():
    # The policy loader and the CLI refuse an unknown method before any model is loaded.
    code = (
        "import sys; from kernel_lifecycle.unlearning import check_method, METHODS; "
        "check_method('npo'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
