"""Where each extracted field was read (page, polygon, OCR line), and the admin API's keys.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("field_evidence", _JSON, nullable=True))
        # When its email arrived (its Date, else when recorded), kept on the job so the
        # admin API's received-date filter is an index range, not a scan of emails.
        batch.add_column(sa.Column("received_at", _TS, nullable=True))
    op.execute(
        "UPDATE jobs SET received_at = (SELECT COALESCE(emails.received_at, emails.created_at)"
        " FROM emails WHERE emails.id = jobs.email_id)"
    )
    op.create_index("ix_jobs_received_at", "jobs", ["received_at"])
    # The admin API's "state + confidence range, sorted by confidence" (scripts/benchmark_api.py).
    op.create_index("ix_jobs_state_confidence", "jobs", ["state", "confidence"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_jobs_state_confidence", table_name="jobs")
    op.drop_index("ix_jobs_received_at", table_name="jobs")
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+), not a batch copy of the table: the
    # copy's DROP TABLE fails while job_events and record_outbox rows point at jobs.
    op.drop_column("jobs", "received_at")
    op.drop_column("jobs", "field_evidence")
