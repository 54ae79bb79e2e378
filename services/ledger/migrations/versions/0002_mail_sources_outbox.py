"""Mail-source sync state, email outcome and raw digest, and the records outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("emails") as batch:
        batch.add_column(sa.Column("raw_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sender_masked", sa.String(255), nullable=True))
        batch.add_column(sa.Column("source_outcome", sa.String(16), nullable=True))
    op.create_index("ix_emails_source_raw_sha256", "emails", ["source", "raw_sha256"])
    op.create_table(
        "mail_sources",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("last_success_at", _TS, nullable=True),
        sa.Column("last_attempt_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_mail_sources"),
    )
    op.create_table(
        "record_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_until", _TS, nullable=True),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_record_outbox"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_record_outbox_job_id_jobs"),
        sa.UniqueConstraint("kind", "job_id", name="uq_record_outbox_kind_job_id"),
    )
    op.create_index(
        "ix_record_outbox_kind_delivered_at_id", "record_outbox", ["kind", "delivered_at", "id"]
    )


def downgrade() -> None:
    op.drop_table("record_outbox")
    op.drop_table("mail_sources")
    op.drop_index("ix_emails_source_raw_sha256", table_name="emails")
    # Plain ALTER TABLE DROP COLUMN (SQLite 3.35+), not a batch copy of the table: the
    # copy's DROP TABLE fails while jobs rows point at emails.
    for column in ("source_outcome", "sender_masked", "raw_sha256"):
        op.drop_column("emails", column)
