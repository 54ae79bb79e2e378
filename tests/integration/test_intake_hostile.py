"""Intake over the whole hostile-mail corpus (``tests/support/hostile_mail.py``).

On SQLite and PostgreSQL. On PostgreSQL the two messages of hundreds of parts each are
left out: they take the same path as on SQLite, a hundred times slower per row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.intake import ingest
from services.ledger import JobState, Ledger
from services.mail import MaildirSource
from tests.support.hostile_mail import OVERSIZED_LIMIT, build_corpus
from tests.support.inboxes import inbox_between_good_emails

pytestmark = pytest.mark.both_databases
MANY_PARTS = {"too_many_parts", "parameter_bomb"}


def test_the_hostile_corpus_between_two_good_emails_ends_in_known_states(
    ledger: Ledger, ledger_backend: str, tmp_path: Path
) -> None:
    """Every class of hostile email: nothing raises, nothing is left, nothing is lost."""
    corpus = build_corpus()
    if ledger_backend == "postgresql":
        corpus = {name: raw for name, raw in corpus.items() if name not in MANY_PARTS}
    inbox = inbox_between_good_emails(tmp_path, corpus)
    source = MaildirSource(inbox)
    report = ingest(
        source,
        ledger,
        LocalBlobStore(tmp_path / "blobs"),
        max_attachment_bytes=OVERSIZED_LIMIT,
    )
    assert report.emails == len(corpus) + 2 and report.left_for_next_poll == 0
    assert list(source.fetch()) == []
    jobs = ledger.list_jobs(limit=1000).items
    assert all(job.state in KNOWN_AT_INTAKE for job in jobs)
    by_email: dict[str, list] = {}
    for job in jobs:
        by_email.setdefault(ledger.get_job(job.id).email.message_id or "", []).append(job)
    # The receipts inside broken multipart structures became claims.
    for name in ("missing_boundary", "boundary_case_mismatch", "boundary_reused"):
        (email_jobs,) = [js for mid, js in by_email.items() if name in mid]
        # Every corpus email carries the same JPEG: the first is received, later ones
        # are duplicates of it; either way it was read out of the broken structure.
        assert any(j.content_type == "jpeg" for j in email_jobs), name
    # Names people see are safe, and say what the bytes are.
    names = {job.filename for job in jobs}
    assert not any(ch in (n or "") for n in names for ch in ("\u202e", "\x00", "/", "\\"))
    assert not any((n or "").endswith(".exe") for n in names)
    # Every email that may hold an unprocessable claim reaches a person.
    review = {j.reason_code for j in jobs if j.state is JobState.NEEDS_REVIEW}
    assert {"failed_upload", "no_claim_document"} <= review


KNOWN_AT_INTAKE = {
    JobState.RECEIVED,
    JobState.NEEDS_REVIEW,
    JobState.SKIPPED,
    JobState.DUPLICATE,
}
