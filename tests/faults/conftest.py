"""The fault tests reuse the scheduler tests' policy fixture."""

from tests.scheduler.conftest import apply_policy  # noqa: F401 - a fixture
