"""Run the ledger's Alembic migrations from code, so they work from an installed wheel.

No ``alembic.ini`` is needed: the script location is this package's ``migrations``
folder and the connection is handed to ``env.py`` directly.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

from services.ledger.engine import WRITE_OPTION

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock key held while migrating (any constant unique to this app).
MIGRATION_LOCK_KEY = 0x6C6564676572  # "ledger"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the ledger; with ``connection``, commands run on it.

    Also the way to write a new revision:
    ``command.revision(alembic_config(conn), message="...", autogenerate=True)``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _locked(connection: Connection) -> Connection:
    """Serialise migrations, so several workers starting at once migrate only once.

    SQLite is locked by the write transaction itself (``BEGIN IMMEDIATE``).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    return connection


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (a no-op when it is already there)."""
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        command.upgrade(alembic_config(_locked(connection)), revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
        command.downgrade(alembic_config(_locked(connection)), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
