"""Gmail in, NCB, Sheets and Drive out: every step twice, and Sheets and Drive down a while.

Real ledger, real OCR, the real Google client libraries over HTTP against the stand-in,
the NCB stand-in over HTTP; the steps are called as the Celery tasks call them. What
must hold: one NCB claim, one audit row and one archived file per job; the email labelled
Queued once recorded and Processed once its jobs are at rest; records written while
Sheets and Drive were down wait in the outbox and go out, in order, when they return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from services.blobs import LocalBlobStore
from services.demo import SAMPLE_INBOX_DIR
from services.demo.google_demo import FOLDER_TYPE
from services.demo.google_standin.drive import store_of as drive_store_of
from services.demo.google_standin.gmail import store_of as gmail_store_of
from services.demo.google_standin.sheets import store_of as sheets_store_of
from services.demo.ncb_standin import StandinServer
from services.google.discovery import build_service
from services.intake import ingest
from services.ledger import JobState, Ledger
from services.ledger.outbox import ARCHIVE, AUDIT
from services.mail.gmail import GmailSource
from services.mailbox_outcomes import mark_outcomes
from services.ncb import NcbClient
from services.ocr.onnx_engine import OnnxOcrEngine
from services.records.delivery import deliver_records
from services.records.drive import DriveArchive
from services.records.sheets import SheetsAuditLog, create_spreadsheet, sheets_client
from services.submission import Outcome, finalize_job, submit_job
from tests.support.ocr_fixtures import recognise

pytestmark = pytest.mark.slow

SAMPLES = ("01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml")


def _adapters(google_standin: StandinServer, ledger: Ledger) -> dict[str, Any]:
    creds = Credentials(token="fake")
    drive = build_service("drive", "v3", creds, google_standin.url)
    folder = drive.files().create(body={"name": "archive", "mimeType": FOLDER_TYPE}).execute()
    client = sheets_client(creds, google_standin.url)
    return {
        "source": GmailSource(
            build_service("gmail", "v1", creds, google_standin.url),
            cursors=ledger.sources,
            max_email_bytes=10 * 1024 * 1024,
            num_retries=0,
        ),
        "audit": SheetsAuditLog(client, create_spreadsheet(client, "audit")),
        "archive": DriveArchive(drive, folder["id"], num_retries=0),
    }


def test_gmail_to_sheets_and_drive_every_step_twice_and_through_an_outage(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path, google_standin: StandinServer
) -> None:
    state = google_standin.app.state.standin
    gmail, sheets, drive = gmail_store_of(state), sheets_store_of(state), drive_store_of(state)
    message_ids = [gmail.add_message((SAMPLE_INBOX_DIR / n).read_bytes()) for n in SAMPLES]
    a = _adapters(google_standin, ledger)
    source, audit, archive = a["source"], a["audit"], a["archive"]
    blobs = LocalBlobStore(tmp_path / "blobs")

    first = ingest(source, ledger, blobs)
    assert (first.emails, first.source_error) == (2, None)
    assert ingest(source, ledger, blobs).emails == 0  # the cursor moved; Queued is set
    for message_id in message_ids:
        assert gmail.labels_of(message_id) >= {"INBOX", "Claims/Queued"}
    jobs = first.new_jobs
    assert len(jobs) == 2

    kwargs: dict[str, Any] = dict(ledger=ledger, blobs=blobs, engine=ocr_engine, threshold=0.5)
    ready = recognise(jobs, **kwargs).ready
    assert not recognise(jobs, **kwargs).ready  # the second run finds them taken
    assert ready, "at least one sample claim is confident enough to submit"

    with StandinServer(api_key="k") as ncb:
        client = NcbClient(ncb.url, "k", base_delay_s=0.01, max_delay_s=0.05)
        for job_id in ready:
            assert submit_job(job_id, ledger=ledger, ncb=client).outcome is Outcome.SUBMITTED
            assert submit_job(job_id, ledger=ledger, ncb=client).outcome is Outcome.NOT_READY
        claims = ncb.state.claims
    assert sorted(c["idempotency_key"] for c in claims) == sorted(ready)

    # Sheets and Drive are down: finalising queues the records, delivering postpones them.
    state.fail_for("sheets", 3600, 503)
    state.fail_for("drive", 3600, 503)
    records = dict(audit=audit, archive=archive, blobs=blobs, retry_after_s=0)
    for job_id in ready:
        assert finalize_job(job_id, ledger=ledger)
        assert finalize_job(job_id, ledger=ledger)
    down = deliver_records(ledger, **records)
    assert down.postponed == 2 * len(ready) and down.done == 0
    assert ledger.outbox.backlog(AUDIT).pending == len(ready)
    assert ledger.outbox.backlog(ARCHIVE).pending == len(ready)
    assert {ledger.get_job(j).state for j in ready} == {JobState.SUBMITTED}
    mark_outcomes(source, ledger)  # a submitted job is not at rest: no Processed yet
    assert all("Claims/Processed" not in gmail.labels_of(m) for m in message_ids)

    # They come back: the outbox drains, each record once, in order; jobs are done.
    state.clear_faults()
    assert deliver_records(ledger, **records).done == len(ready)
    assert deliver_records(ledger, **records).done == 0
    for job_id in ready:
        assert finalize_job(job_id, ledger=ledger) is False
        assert ledger.get_job(job_id).state is JobState.DONE
    spreadsheet_id = audit.spreadsheet_id
    tab_rows = [
        row for tab in sheets.tabs(spreadsheet_id) for row in sheets.rows(spreadsheet_id, tab)[1:]
    ]
    assert [row[0] for row in tab_rows] == ready  # one row each, in the order queued
    archived = [f for f in drive.files() if f.get("appProperties")]
    assert sorted(f["appProperties"]["claims_ocr_job_id"] for f in archived) == sorted(ready)

    # Labels follow the ledger: each email shows exactly one outcome, once; repeats change
    # nothing.
    mark_outcomes(source, ledger)
    assert mark_outcomes(source, ledger) == 0
    outcomes = {"Claims/Processed", "Claims/Needs-Review", "Claims/Failed"}
    for message_id in message_ids:
        shown = gmail.labels_of(message_id) & outcomes
        assert len(shown) == 1
    review = [j for j in jobs if ledger.get_job(j).state is JobState.NEEDS_REVIEW]
    if review:
        assert any("Claims/Needs-Review" in gmail.labels_of(m) for m in message_ids)
