"""Errors the ledger raises, so callers can tell "no such job" from "job moved on"."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error raised by the ledger."""


class JobNotFound(LedgerError, LookupError):
    """No job with this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class EmailNotFound(LedgerError, LookupError):
    """No email with this id."""

    def __init__(self, email_id: str) -> None:
        super().__init__(f"email {email_id} not found")
        self.email_id = email_id


class InvalidTransition(LedgerError):
    """The job's current state does not allow the requested move.

    ``current`` is the state the job was found in, so a worker whose task was
    redelivered after another worker finished the job can log it and move on.
    """

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not allowed")
        self.job_id = job_id
        self.current = current
        self.target = target


class StaleState(InvalidTransition):
    """The job changed between our read and our compare-and-set write.

    Another worker won the race. A subclass of ``InvalidTransition`` because for a
    caller both mean the same thing: the job is not where you thought it was.
    """


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database or the disk is out of reach (a dropped
    connection, a server restart, a full disk), not that the data was refused: retry
    later rather than set the data aside."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError | OSError)
