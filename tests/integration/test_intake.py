"""Intake: one bad email never blocks the inbox, and every email ends in a known state.

Real ledger (SQLite and PostgreSQL: what fits a column differs between them), real blob
store and a real folder source holding the bundled sample emails and hostile ones.
"""

from __future__ import annotations

import random
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.demo.receipts import random_spec, render_receipt, to_jpeg
from services.intake import ingest
from services.ledger import WHOLE_EMAIL_PART, JobState, Ledger
from services.mail import MaildirSource
from tests.support.inboxes import inbox_between_good_emails

pytestmark = pytest.mark.both_databases


def _deeply_nested(levels: int) -> bytes:
    raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(levels):
        raw += f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode()
    return raw


POISON = {
    "from_at": b"From: a@\r\nSubject: claim\r\n\r\nPolicy No: POL-1\r\n",
    "from_quote": b'From: "\r\nSubject: claim\r\n\r\nbody\r\n',
    "message_id": b"From: a@example.com\r\nMessage-ID: <\r\nSubject: x\r\n\r\nbody\r\n",
    "nested_1000": _deeply_nested(1000),
}


def _email(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Ann <ann@example.com>")
    msg["To"] = "claims@example.com"
    msg["Subject"] = headers.pop("Subject", "Claim, Policy No: POL-12345")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Please find my receipt attached.\n")
    return msg


def _receipt_jpeg() -> bytes:
    return to_jpeg(render_receipt(random_spec(random.Random(7))))


@pytest.mark.parametrize("poison", sorted(POISON))
def test_a_poison_email_is_quarantined_and_the_others_recorded(
    ledger: Ledger, tmp_path: Path, poison: str
) -> None:
    inbox = inbox_between_good_emails(tmp_path, {poison: POISON[poison]})
    source = MaildirSource(inbox)
    report = ingest(source, ledger, LocalBlobStore(tmp_path / "blobs"))

    assert report.emails == 3 and report.left_for_next_poll == 0
    assert len(report.new_jobs) >= 2  # both good receipts go on to OCR
    assert list(source.fetch()) == []  # nothing is left to block the next poll
    review = ledger.list_jobs(states=[JobState.NEEDS_REVIEW]).items
    assert all(job.reason_code for job in review)
    if report.quarantined:
        (item,) = review
        assert item.part_index == WHOLE_EMAIL_PART
        # The raw message is kept for a person.
        blobs = LocalBlobStore(tmp_path / "blobs")
        assert blobs.get(ledger.get_job(item.id).blob_key) == POISON[poison]


def test_an_email_with_no_attachment_reaches_a_person(ledger: Ledger, tmp_path: Path) -> None:
    inbox = inbox_between_good_emails(tmp_path, {"forgot": _email().as_bytes()})
    report = ingest(MaildirSource(inbox), ledger, LocalBlobStore(tmp_path / "blobs"))
    assert report.emails == 3 and report.quarantined == 0
    (item,) = ledger.list_jobs(states=[JobState.NEEDS_REVIEW]).items
    assert item.part_index == WHOLE_EMAIL_PART
    assert item.reason_code == "no_claim_document"


def test_failed_uploads_reach_a_person_and_other_skips_keep_their_own_code(
    ledger: Ledger, tmp_path: Path
) -> None:
    msg = _email()
    msg.add_attachment(b"", maintype="image", subtype="jpeg", filename="empty.jpg")
    msg.add_attachment(b"notes", maintype="text", subtype="plain", filename="notes.txt")
    big = _email(Subject="Claim, Policy No: POL-777")
    big.add_attachment(_receipt_jpeg(), maintype="image", subtype="jpeg", filename="big.jpg")
    inbox = inbox_between_good_emails(tmp_path, {"empty": msg.as_bytes(), "big": big.as_bytes()})
    blobs = LocalBlobStore(tmp_path / "blobs")
    ingest(MaildirSource(inbox), ledger, blobs, max_attachment_bytes=10_000)

    jobs = {job.filename: job for job in ledger.list_jobs(limit=100).items}
    codes = {name: (job.state, job.reason_code) for name, job in jobs.items()}
    assert codes["empty.jpg"] == (JobState.SKIPPED, "empty_attachment")
    assert codes["notes.txt"] == (JobState.SKIPPED, "not_a_claim_document")
    assert codes["big.jpg"] == (JobState.SKIPPED, "attachment_too_large")
    oversized = jobs["big.jpg"]
    assert oversized.size_bytes > 10_000
    assert ledger.get_job(oversized.id).blob_key == ""  # bytes over the limit are not kept
    # Each email with a failed upload reaches a person, its raw message attached.
    review = ledger.list_jobs(states=[JobState.NEEDS_REVIEW], reason_code="failed_upload").items
    assert len(review) == 4  # the two hostile emails, and the good ones over this tiny limit
    assert {job.part_index for job in review} == {WHOLE_EMAIL_PART}
    # Filterable by code.
    page = ledger.list_jobs(states=[JobState.SKIPPED], reason_code="not_a_claim_document")
    assert [job.filename for job in page.items] == ["notes.txt"]


def test_an_email_over_the_size_limit_is_not_read_or_kept(ledger: Ledger, tmp_path: Path) -> None:
    msg = _email()
    msg.add_attachment(_receipt_jpeg(), maintype="image", subtype="jpeg", filename="r.jpg")
    msg.add_attachment(b"x" * 400_000, maintype="application", subtype="pdf", filename="p.pdf")
    inbox = inbox_between_good_emails(tmp_path, {"huge": msg.as_bytes()})
    report = ingest(
        MaildirSource(inbox), ledger, LocalBlobStore(tmp_path / "blobs"), max_email_bytes=300_000
    )
    assert report.quarantined == 1 and len(report.new_jobs) == 2
    items = ledger.list_jobs(states=[JobState.NEEDS_REVIEW], reason_code="email_too_large").items
    assert [ledger.get_job(job.id).blob_key for job in items] == [""]


def test_long_values_fit_their_columns_on_every_database(ledger: Ledger, tmp_path: Path) -> None:
    msg = _email(
        Subject="Claim, Policy No: " + "P" * 300,
        Message_ID="<" + "m" * 2000 + "@example.com>",
    )
    msg.add_attachment(
        _receipt_jpeg(), maintype="image", subtype="jpeg", filename="r" * 300 + ".jpg"
    )
    inbox = inbox_between_good_emails(tmp_path, {"long": msg.as_bytes()})
    report = ingest(MaildirSource(inbox), ledger, LocalBlobStore(tmp_path / "blobs"))
    assert report.emails == 3 and report.quarantined == 0
    long_jobs = [
        j for j in ledger.list_jobs(limit=100).items if (j.filename or "").startswith("rrr")
    ]
    (job,) = long_jobs
    assert len(job.filename or "") <= 255
    view = ledger.get_job(job.id)
    assert len(view.email.message_id or "") <= 998
    assert view.email.policy_number is None  # a 300-character "policy number" is not one


def test_storage_failure_leaves_the_email_for_the_next_poll(ledger: Ledger, tmp_path: Path) -> None:
    inbox = inbox_between_good_emails(tmp_path, {})
    blob_dir = tmp_path / "blobs"
    blob_dir.write_text("not a folder")  # every write fails, as on a full or lost disk
    source = MaildirSource(inbox)
    report = ingest(source, ledger, LocalBlobStore(blob_dir))
    assert report.emails == 0 and report.left_for_next_poll == 2
    assert len(list(source.fetch())) == 2  # fetched again next time, nothing lost
    blob_dir.unlink()
    again = ingest(source, ledger, LocalBlobStore(blob_dir))
    assert again.emails == 2 and len(again.new_jobs) == 2
