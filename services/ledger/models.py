"""SQLAlchemy models of the ledger: emails, jobs (one per attachment) and job events.

The schema itself is created by the Alembic migrations in ``migrations/``; these
classes must match them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from services.ledger.states import JobState

#: Stable constraint names, so later migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: States whose jobs do not count as the original of a sha256 (see ``uq_jobs_sha256_original``).
NOT_ORIGINAL_STATES = (JobState.DUPLICATE, JobState.SKIPPED, JobState.REJECTED)
#: ``Job.part_index`` of a job that stands for a whole email rather than one attachment
#: (an email that could not be read, or that has no receipt attached): its bytes are the
#: raw message, and it waits for a person.
WHOLE_EMAIL_PART = -1
_NOT_ORIGINAL_SQL = text("state NOT IN ('duplicate', 'skipped', 'rejected')")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    PostgreSQL keeps the zone (timestamptz); SQLite has none, so values are stored as
    naive UTC and given their zone back on the way out. Naive input is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")
StateType = Enum(
    JobState,
    native_enum=False,
    length=16,
    values_callable=lambda states: [s.value for s in states],
    validate_strings=True,
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Email(Base):
    """One message from a mail source; its attachments are jobs."""

    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_emails_source_raw_sha256", "source", "raw_sha256"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))  # "maildir", "gmail", "imap"
    source_id: Mapped[str] = mapped_column(String(255))  # the message's id in that source
    message_id: Mapped[str | None] = mapped_column(String(998))  # RFC 5322 Message-ID header
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # sha256 of the normalised sender address: lets logs and stats group by sender
    # without the address itself.
    sender_hash: Mapped[str | None] = mapped_column(String(64))
    policy_number: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[str | None] = mapped_column(String(64))
    member_name: Mapped[str | None] = mapped_column(String(255))
    attachment_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # sha256 of the raw message: the same message seen again under a new source id (an
    # IMAP folder whose UIDVALIDITY changed) is recognised and not recorded twice.
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    # "a***@example.com": enough for an auditor to tell senders apart, not the address.
    sender_masked: Mapped[str | None] = mapped_column(String(255))
    # The outcome last shown in the mailbox (a Gmail label, an IMAP keyword).
    source_outcome: Mapped[str | None] = mapped_column(String(16))


class Job(Base):
    """One attachment of one email, on its way to NCB (or to a person, or nowhere)."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The same attachment of the same email never makes two jobs.
        UniqueConstraint("email_id", "part_index"),
        # At most one live original per content: a second concurrent insert of the same
        # bytes fails here and is recorded as a duplicate instead.
        Index(
            "uq_jobs_sha256_original",
            "sha256",
            unique=True,
            sqlite_where=_NOT_ORIGINAL_SQL,
            postgresql_where=_NOT_ORIGINAL_SQL,
        ),
        Index("ix_jobs_state_created_at", "state", "created_at"),
        Index("ix_jobs_state_confidence", "state", "confidence"),
        Index("ix_jobs_received_at", "received_at"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_fingerprint_strict", "fingerprint_strict"),
        Index("ix_jobs_fingerprint_loose", "fingerprint_loose"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email_id: Mapped[str] = mapped_column(ForeignKey("emails.id"))
    part_index: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(255))

    state: Mapped[JobState] = mapped_column(StateType)
    # Why the job is in its current state (None when there is nothing to explain).
    reason_code: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))

    page_count: Mapped[int | None] = mapped_column(Integer)
    fields: Mapped[dict[str, str | None] | None] = mapped_column(JsonType)
    field_confidence: Mapped[dict[str, float] | None] = mapped_column(JsonType)
    # Per field: where on which page it was read ({"page", "polygon", "text", ...}).
    field_evidence: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    confidence: Mapped[float | None] = mapped_column(Float)
    route: Mapped[str | None] = mapped_column(String(16))
    reasons: Mapped[list[dict[str, str]] | None] = mapped_column(JsonType)
    corrected_fields: Mapped[dict[str, str | None] | None] = mapped_column(JsonType)
    ncb_reference: Mapped[str | None] = mapped_column(String(64))

    # When its email arrived (its Date header, else when we recorded it): the admin API
    # filters on it, so it lives on the job with its own index.
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The claim's keys (``services.claim_fingerprint``: sha256 of invoice + amount + date,
    # and of amount + date + provider), set when its fields are saved: the same receipt
    # claimed again is found by an index probe (``Ledger.find_possible_duplicate``).
    fingerprint_strict: Mapped[str | None] = mapped_column(String(64))
    fingerprint_loose: Mapped[str | None] = mapped_column(String(64))


class JobEvent(Base):
    """One state change of a job. Append-only: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_state: Mapped[JobState | None] = mapped_column(StateType)  # None when created
    to_state: Mapped[JobState] = mapped_column(StateType)
    actor: Mapped[str] = mapped_column(String(64))  # "poller", "worker:ocr", "user:alice"
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class MailSourceStatus(Base):
    """A mail source's sync position and health: one row per source."""

    __tablename__ = "mail_sources"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Gmail's history id, IMAP's UIDVALIDITY: advanced only after the jobs it covers are
    # committed, so a crash re-reads rather than skips.
    cursor: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # "ok", "auth_revoked", "unavailable", ...
    detail: Mapped[str | None] = mapped_column(Text)  # what to do about it, for people
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxItem(Base):
    """A record owed to the audit log or the archive, delivered in order, exactly once.

    Finalising a job queues its items here in the job's own transaction; a deliverer
    takes them under a lease and marks them delivered. While Sheets or Drive is down
    they simply wait.
    """

    __tablename__ = "record_outbox"
    __table_args__ = (
        UniqueConstraint("kind", "job_id"),
        Index("ix_record_outbox_kind_delivered_at_id", "kind", "delivered_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "audit" or "archive"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Attempts started: above zero, a delivery may have landed without being recorded,
    # so the deliverer asks the destination before writing again.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    location: Mapped[str | None] = mapped_column(Text)  # where the archive put the file


class ApiKey(Base):
    """A key for the admin API. Only a hash of its secret is kept; ``name`` is who acts."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public part of the key
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | reviewer | admin
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the secret part
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
