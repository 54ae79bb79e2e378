"""Claim fingerprints on jobs, so the same receipt claimed twice is found by an index.

``jobs.fingerprint_strict`` (invoice number + amount + date) and
``jobs.fingerprint_loose`` (amount + date + provider), both sha256 hex of the normalised
parts (``services.claim_fingerprint``). Jobs extracted before this revision are
fingerprinted here from the fields OCR read, so a receipt claimed before the upgrade is
still caught when it comes again after it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.claim_fingerprint import claim_fingerprint

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_BATCH = 1000


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN on both databases (no batch copy of the table).
    op.add_column("jobs", sa.Column("fingerprint_strict", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("fingerprint_loose", sa.String(64), nullable=True))
    _backfill()
    op.create_index("ix_jobs_fingerprint_strict", "jobs", ["fingerprint_strict"])
    op.create_index("ix_jobs_fingerprint_loose", "jobs", ["fingerprint_loose"])


def _backfill() -> None:
    """Fingerprint every job that has extracted fields, in batches of updates."""
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("fields", _JSON),
        sa.column("fingerprint_strict", sa.String),
        sa.column("fingerprint_loose", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.fields).where(jobs.c.fields.is_not(None)))
    updates = []
    for job_id, fields in rows.all():
        if not isinstance(fields, dict):
            continue
        fingerprint = claim_fingerprint(fields)
        if fingerprint:
            updates.append({"b_id": job_id, "s": fingerprint.strict, "l": fingerprint.loose})
    statement = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("b_id"))
        .values(fingerprint_strict=sa.bindparam("s"), fingerprint_loose=sa.bindparam("l"))
    )
    for start in range(0, len(updates), _BATCH):
        connection.execute(statement, updates[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index("ix_jobs_fingerprint_loose", table_name="jobs")
    op.drop_index("ix_jobs_fingerprint_strict", table_name="jobs")
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+), not a batch copy of the table: the
    # copy's DROP TABLE fails while job_events and record_outbox rows point at jobs.
    op.drop_column("jobs", "fingerprint_loose")
    op.drop_column("jobs", "fingerprint_strict")
