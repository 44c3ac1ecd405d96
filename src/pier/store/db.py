"""Engine, sessions and schema migrations (Alembic, run at platform start)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pier.errors import PierError

MIGRATIONS = Path(__file__).parent / "migrations"

#: What opens sessions on the state store; the repositories (pier.store.*) take one.
Sessions = sessionmaker[Session]


class StoreUnavailable(PierError):
    """The state database cannot be reached or opened."""

    status = 503
    code = "ServiceUnavailable"


class Duplicate(Exception):
    """A row with the same unique key exists (found by a repository, or clashing at commit)."""


def _normalise(url: str) -> str:
    """postgresql:// means psycopg 3 (the driver pier installs), not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create(url: str, what: str = "the state database") -> Engine:
    """An engine for `url` (sqlite:///path or postgresql://...), checked by connecting once;
    StoreUnavailable names `what` it was for."""
    try:
        parsed = make_url(_normalise(url))
    except ArgumentError as exc:
        raise StoreUnavailable(f"invalid URL for {what}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        safe = make_url(url).render_as_string(hide_password=True)  # as the user wrote it
        raise StoreUnavailable(f"cannot reach {what} {safe}: {exc.orig}") from None
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessions(engine: Engine) -> Sessions:
    return sessionmaker(engine, expire_on_commit=False)
