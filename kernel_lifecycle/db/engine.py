"""Engine and session factory for the lifecycle DB, plus Alembic upgrade and the schema check.

Nothing connects at import. Every session first checks that the database is reachable and at
the code's Alembic head, so a database behind the code fails with an instruction, not with a
missing-column traceback halfway through a job.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kernel_lifecycle.errors import ConfigurationError, DatabaseError
from kernel_lifecycle.resources import bundled
from kernel_lifecycle.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

VERSION_TABLE = "kl_alembic_version"


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _url(url: str | None) -> str:
    return url or get_settings().db_url


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    url = _url(url)
    if url not in _ENGINES:
        _ENGINES[url] = _create_engine(url)
    return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"KL_DATABASE_URL {url!r} is not a database URL; use e.g. "
            "sqlite:///path/lifecycle.db or postgresql://user@host:5432/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=_connect_args(parsed))
    except (ImportError, ArgumentError) as exc:
        raise ConfigurationError(f"cannot use database URL {redact(url)}: {exc}") from None


def _connect_args(parsed: URL) -> dict[str, Any]:
    if parsed.get_backend_name() == "postgresql":
        return {"connect_timeout": 5}
    return {}


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(bundled("alembic")))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.attributes["database_url"] = _url(url)
    return cfg


@functools.cache  # the scripts ship with the code; every session checks against the head
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE}
            ).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot reach the lifecycle database at {redact(str(engine.url))}: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from None


def ensure_current(url: str | None = None) -> Engine:
    engine = get_engine(url)
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise DatabaseError(
            f"the lifecycle database {redact(str(engine.url))} is {state}, the code needs {head}; "
            "run `kernel-lifecycle db upgrade`"
        )
    return engine


def upgrade(url: str | None = None, revision: str = "head") -> str:
    current_revision(get_engine(url))  # a clear error when unreachable, before Alembic's
    command.upgrade(alembic_config(url), revision)
    return head_revision()


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error.

    The caller owns the transaction: a job's final state and a promotion commit together.
    """
    engine = ensure_current(url)
    session = sessionmaker(engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise DatabaseError(
            f"lifecycle database error at {redact(str(engine.url))}: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = [
    "SQLAlchemyError",
    "alembic_config",
    "current_revision",
    "downgrade",
    "ensure_current",
    "get_engine",
    "head_revision",
    "session_scope",
    "upgrade",
]


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests; processes that fork)."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.dispose()
