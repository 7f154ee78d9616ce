"""The schema's table of unlearning options matches the methods the unlearning package registers."""

from __future__ import annotations

import dataclasses

from kernel_lifecycle.policy.schema import METHOD_OPTIONS, METHODS_NEEDING_RETAIN, UnlearningHyperparameters


def test_method_table_matches_the_registry():
    from kernel_lifecycle.unlearning import METHODS, get_method

    assert set(METHOD_OPTIONS) == set(METHODS)
    for name in METHODS:
        method = get_method(name)
        options = {f.name for f in dataclasses.fields(method)}
        assert METHOD_OPTIONS[name] == options, name
        assert (name in METHODS_NEEDING_RETAIN) == bool(type(method).needs_retain), name
        # every option has a field in the policy's hyperparameters
        assert options <= set(UnlearningHyperparameters.model_fields), name
