"""The fault tests reuse the scheduler tests' policy fixture."""

from tests.scheduler.conftest import apply_policy, scheduled_postgres  # noqa: F401 - fixtures
