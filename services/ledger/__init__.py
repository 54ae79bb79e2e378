"""The durable job ledger: emails, one job per attachment, and an append-only event trail.

Typical use::

    ledger = Ledger("sqlite:///data/ledger.db")
    ledger.migrate()
    email_id = ledger.record_email("maildir", key, message_id, received_at, sender)
    job_id, created = ledger.record_attachment(email_id, 0, name, ctype, size, sha, blob)
"""

from services.ledger.apikeys import ApiKeyExists, ApiKeyNotFound, ApiKeyView, CreatedKey, Role
from services.ledger.errors import (
    EmailNotFound,
    InvalidTransition,
    JobNotFound,
    LedgerError,
    StaleState,
    is_unavailable,
)
from services.ledger.ledger import SORT_COLUMNS, Ledger, hash_sender, job_cursor
from services.ledger.models import WHOLE_EMAIL_PART
from services.ledger.states import (
    END_STATES,
    RETRY_TARGET,
    TRANSITIONS,
    WORKING_STATES,
    JobState,
    Route,
    can_move,
)
from services.ledger.views import (
    EmailView,
    EventView,
    JobPage,
    JobSummary,
    JobView,
    LedgerSummary,
)

__all__ = [
    "END_STATES",
    "RETRY_TARGET",
    "SORT_COLUMNS",
    "TRANSITIONS",
    "WHOLE_EMAIL_PART",
    "WORKING_STATES",
    "ApiKeyExists",
    "ApiKeyNotFound",
    "ApiKeyView",
    "CreatedKey",
    "EmailNotFound",
    "EmailView",
    "EventView",
    "InvalidTransition",
    "JobNotFound",
    "JobPage",
    "JobState",
    "JobSummary",
    "JobView",
    "Ledger",
    "LedgerError",
    "LedgerSummary",
    "Role",
    "Route",
    "StaleState",
    "can_move",
    "hash_sender",
    "is_unavailable",
    "job_cursor",
]
