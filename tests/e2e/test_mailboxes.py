"""A real mailbox in, real records out, through ``claims-ocr run --once``.

Gmail, Sheets and Drive: the Google stand-in, started by the test, spoken to by the
real Google client libraries in the worker processes (``GOOGLE_API_ROOT_URL``), with
Sheets down for the first seconds of the run. IMAP: a private Dovecot over TLS. Both
with real Redis, real Celery workers, the real OCR models and the NCB stand-in. What
must hold: every claim in NCB once, one audit row and one archived original per done
job, and the mailbox showing each email's outcome once its jobs are at rest.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from services.demo import SAMPLE_INBOX_DIR
from services.demo.google_demo import FOLDER_TYPE
from services.demo.google_standin.drive import store_of as drive_store_of
from services.demo.google_standin.gmail import store_of as gmail_store_of
from services.demo.google_standin.sheets import store_of as sheets_store_of
from services.demo.ncb_standin import StandinServer, read_records
from services.google.discovery import build_service
from services.ledger import JobState, Ledger
from services.records.sheets import create_spreadsheet, sheets_client
from tests.e2e.test_pipeline import check_exactly_once, finish_run, run_env, start_run
from tests.support.dovecot import DovecotServer

pytestmark = pytest.mark.slow

# A clean receipt, one in Malay, and a blurry photo that must go to review.
EMAILS = ["01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml", "04_blurry_photo.eml"]
OUTCOME_LABELS = {"Claims/Processed", "Claims/Needs-Review", "Claims/Failed"}
OUTCOME_KEYWORDS = {"$ClaimsProcessed", "$ClaimsNeedsReview", "$ClaimsFailed"}


def _jobs(data_dir: Path) -> tuple[Ledger, list[Any], list[Any]]:
    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    claims = read_records(data_dir / "ncb-standin.jsonl")
    done = check_exactly_once(ledger, claims)
    review = ledger.list_jobs(states=[JobState.NEEDS_REVIEW], limit=100).items
    return ledger, done, list(review)


def test_gmail_sheets_and_drive_through_a_sheets_outage(
    tmp_path: Path, redis_url: str, google_standin: StandinServer
) -> None:
    state = google_standin.app.state.standin
    gmail, sheets, drive = gmail_store_of(state), sheets_store_of(state), drive_store_of(state)
    message_ids = [gmail.add_message((SAMPLE_INBOX_DIR / n).read_bytes()) for n in EMAILS]
    creds = Credentials(token="e2e")
    spreadsheet_id = create_spreadsheet(sheets_client(creds, google_standin.url), "audit")
    folder = (
        build_service("drive", "v3", creds, google_standin.url)
        .files()
        .create(body={"name": "archive", "mimeType": FOLDER_TYPE}, fields="id")
        .execute()
    )
    state.fail_for("sheets", 6, 503)  # the first rows must wait in the outbox

    data_dir = tmp_path / "data"
    env = run_env(
        data_dir,
        redis_url,
        MAIL_SOURCE="gmail",
        AUDIT_SINK="sheets",
        ARCHIVE_SINK="drive",
        GOOGLE_API_ROOT_URL=google_standin.url,
        GOOGLE_NUM_RETRIES="0",
        SHEETS_SPREADSHEET_ID=spreadsheet_id,
        DRIVE_FOLDER_ID=folder["id"],
    )
    summary = finish_run(start_run(env, tmp_path))
    assert (summary["emails"], summary["in_progress"]) == (len(EMAILS), 0)

    ncb_record = data_dir / "ncb-standin.jsonl"
    ledger, done, review = _jobs(data_dir)
    assert done and review, "the clean receipts go to NCB, the blurry photo to review"
    rows = [row for tab in sheets.tabs(spreadsheet_id) for row in sheets.rows(spreadsheet_id, tab)]
    header = rows[0]
    audited = [dict(zip(header, row, strict=False)) for row in rows if row != header]
    assert sorted(r["job_id"] for r in audited) == sorted(job.id for job in done)
    assert all(r["state"] == "done" and r["ncb_reference"] for r in audited)
    archived = [f for f in drive.files() if f.get("appProperties")]
    assert sorted(f["appProperties"]["claims_ocr_job_id"] for f in archived) == sorted(
        job.id for job in done
    )
    assert ledger.outbox.backlog("audit").pending == 0

    for message_id in message_ids:
        labels = gmail.labels_of(message_id)
        assert "Claims/Queued" in labels
        assert len(labels & OUTCOME_LABELS) == 1, labels
    for job in review:
        message = ledger.get_job(job.id).email.source_id
        assert "Claims/Needs-Review" in gmail.labels_of(message)

    # The invariant checker reads the sheet and the Drive folder and finds all in order.
    checked = subprocess.run(
        [sys.executable, "-m", "workers.cli", "check", "--ncb-record", str(ncb_record)],
        env={**env, "CLAIMS_OCR_ENV": "demo"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # A second run reads only what changed since the stored history id: nothing.
    again = finish_run(start_run(env, tmp_path))
    assert again["emails"] == 0
    assert len(read_records(ncb_record)) == len(done)


def test_imap_over_tls_with_keywords(
    tmp_path: Path, redis_url: str, dovecot: DovecotServer
) -> None:
    for name in EMAILS:
        dovecot.append((SAMPLE_INBOX_DIR / name).read_bytes())
    data_dir = tmp_path / "data"
    env = run_env(
        data_dir,
        redis_url,
        **dovecot.settings_env(),
    )
    summary = finish_run(start_run(env, tmp_path))
    assert (summary["emails"], summary["in_progress"]) == (len(EMAILS), 0)

    _, done, review = _jobs(data_dir)
    assert done and review
    with (data_dir / "audit.csv").open() as fh:
        assert sorted(r["job_id"] for r in csv.DictReader(fh)) == sorted(j.id for j in done)
    flags = dovecot.flags()
    assert len(flags) == len(EMAILS)
    for uid, marks in flags.items():
        assert "$ClaimsQueued" in marks, (uid, marks)
        assert len(marks & OUTCOME_KEYWORDS) == 1, (uid, marks)
    assert any("$ClaimsNeedsReview" in marks for marks in flags.values())

    again = finish_run(start_run(env, tmp_path))
    assert again["emails"] == 0
    assert len(read_records(data_dir / "ncb-standin.jsonl")) == len(done)
