"""Alembic: up, down, up on SQLite and PostgreSQL; models and migrations do not drift."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kernel_lifecycle.db.engine import VERSION_TABLE, downgrade, get_engine, head_revision, upgrade
from kernel_lifecycle.db.models import Base


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    upgrade(db_url)
    ours = {t.name for t in Base.metadata.sorted_tables}
    assert ours <= _tables(db_url)
    downgrade(db_url, "base")
    assert _tables(db_url) & ours == set()
    upgrade(db_url)
    assert ours <= _tables(db_url)


def test_models_and_migrations_do_not_drift(migrated_db: str) -> None:
    engine = get_engine(migrated_db)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "version_table": VERSION_TABLE,
                "include_object": lambda obj, name, type_, *_: type_ != "table" or name.startswith("kl_")
                and name != VERSION_TABLE,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models differ from migrations: {diff}"


def test_foreign_tables_are_left_alone(db_url: str) -> None:
    """MLflow's and APScheduler's tables may share the database: never dropped by our migrations."""
    from sqlalchemy import text

    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY)"))
    upgrade(db_url)
    downgrade(db_url, "base")
    assert "apscheduler_jobs" in _tables(db_url)
    assert head_revision()
