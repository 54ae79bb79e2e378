"""Initial ledger schema: emails, jobs, append-only job events.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
_NOT_ORIGINAL = sa.text("state NOT IN ('duplicate', 'skipped', 'rejected')")

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER job_events_no_update BEFORE UPDATE ON job_events
       BEGIN SELECT RAISE(ABORT, 'job_events is append-only'); END""",
    """CREATE TRIGGER job_events_no_delete BEFORE DELETE ON job_events
       BEGIN SELECT RAISE(ABORT, 'job_events is append-only'); END""",
]
_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION job_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'job_events is append-only'; END $$""",
    """CREATE TRIGGER job_events_no_change BEFORE UPDATE OR DELETE ON job_events
       FOR EACH ROW EXECUTE FUNCTION job_events_append_only()""",
    """CREATE TRIGGER job_events_no_truncate BEFORE TRUNCATE ON job_events
       FOR EACH STATEMENT EXECUTE FUNCTION job_events_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "emails",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(998), nullable=True),
        sa.Column("received_at", _TS, nullable=True),
        sa.Column("sender_hash", sa.String(64), nullable=True),
        sa.Column("policy_number", sa.String(64), nullable=True),
        sa.Column("member_id", sa.String(64), nullable=True),
        sa.Column("member_name", sa.String(255), nullable=True),
        sa.Column("attachment_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_emails"),
        sa.UniqueConstraint("source", "source_id", name="uq_emails_source_source_id"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("email_id", sa.String(36), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("content_type", sa.String(127), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("duplicate_of", sa.String(36), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("fields", _JSON, nullable=True),
        sa.Column("field_confidence", _JSON, nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("route", sa.String(16), nullable=True),
        sa.Column("reasons", _JSON, nullable=True),
        sa.Column("corrected_fields", _JSON, nullable=True),
        sa.Column("ncb_reference", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(["email_id"], ["emails.id"], name="fk_jobs_email_id_emails"),
        sa.ForeignKeyConstraint(["duplicate_of"], ["jobs.id"], name="fk_jobs_duplicate_of_jobs"),
        sa.UniqueConstraint("email_id", "part_index", name="uq_jobs_email_id_part_index"),
    )
    op.create_index("ix_jobs_reason_code", "jobs", ["reason_code"])
    op.create_index("ix_jobs_state_created_at", "jobs", ["state", "created_at"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index(
        "uq_jobs_sha256_original",
        "jobs",
        ["sha256"],
        unique=True,
        sqlite_where=_NOT_ORIGINAL,
        postgresql_where=_NOT_ORIGINAL,
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("details", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs"),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])

    triggers = {"postgresql": _POSTGRES_TRIGGERS, "sqlite": _SQLITE_TRIGGERS}
    for statement in triggers.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS job_events_no_truncate ON job_events")
        op.execute("DROP TRIGGER IF EXISTS job_events_no_change ON job_events")
        op.execute("DROP FUNCTION IF EXISTS job_events_append_only()")
    op.drop_table("job_events")  # SQLite drops its triggers with the table
    op.drop_table("jobs")
    op.drop_table("emails")
