"""Alembic environment: runs on the connection that ``services.ledger.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from services.ledger.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ledger migrations through services.ledger.migrate (no URL config)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
