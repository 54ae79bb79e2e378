"""The invariant checker on a real ledger, real audit CSV, real archive and real mail files.

A clean pipeline state passes; each way of breaking it is found under its own code.
States are reached through the ledger's public API; where an invariant cannot be broken
through that API (it is what the API guarantees), the test breaks the stored data itself,
as a bug or a hand edit would. Tests whose subject is the SQL run on PostgreSQL too;
``claims-ocr check`` runs as a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from services.blobs import LocalBlobStore
from services.demo import SAMPLE_INBOX_DIR
from services.intake import ingest
from services.invariants import (
    DoneEmail,
    Verdict,
    check_invariants,
    default_deadlines,
    list_done_emails,
)
from services.ledger import JobState, Ledger
from services.mail import MaildirSource, parse_email
from services.records import AuditRow, CsvAuditLog, LocalArchive
from tests.support.ledger_helpers import drive, new_email, new_job

DEADLINES = default_deadlines(stale_after_s=1200, sweep_interval_s=30)
LATER = timedelta(seconds=1200 + 60 + 1)  # just past every working state's deadline
TWO_PARTS = "06_two_attachments.eml"


@dataclass
class World:
    """A ledger with its records outside it: audit log, archive, NCB's claims, mail."""

    ledger: Ledger
    root: Path
    audit: CsvAuditLog = field(init=False)
    archive: LocalArchive = field(init=False)
    claims: list[dict[str, Any]] = field(default_factory=list)
    inbox: Path = field(init=False)

    def __post_init__(self) -> None:
        self.audit = CsvAuditLog(self.root / "audit.csv")
        self.archive = LocalArchive(self.root / "archive")
        self.inbox = self.root / "inbox"
        self.inbox.mkdir()

    def finished_job(self, **kwargs: Any) -> str:
        """A job the whole pipeline has finished: in NCB, archived, audited, done."""
        job_id = new_job(self.ledger, **kwargs)
        drive(self.ledger, job_id, "submitted")
        self.claims.append({"idempotency_key": job_id, "claim_reference": "CLM-1"})
        self.archive.store(job_id, "receipt.jpg", b"\xff\xd8 receipt", datetime.now(UTC))
        self.audit.append(audit_row(job_id))
        self.ledger.mark_done(job_id)
        return job_id

    def job_in(self, state: str) -> str:
        job_id = new_job(self.ledger)
        drive(self.ledger, job_id, state)
        return job_id

    def receive_mail(self, *names: str) -> None:
        """Real intake over a folder source: the emails end up in ``inbox/done/``."""
        for name in names:
            shutil.copy2(SAMPLE_INBOX_DIR / name, self.inbox / name)
        ingest(MaildirSource(self.inbox), self.ledger, LocalBlobStore(self.root / "blobs"))

    def check(self, *, now: datetime | None = None, **overrides: Any) -> Verdict:
        kwargs: dict[str, Any] = {
            "audit": self.audit,
            "archive": self.archive,
            "deadlines": DEADLINES,
            "done_emails": list_done_emails(self.inbox),
            "ncb_claims": self.claims,
            "now": now,
        }
        return check_invariants(self.ledger, **{**kwargs, **overrides})


def audit_row(job_id: str) -> AuditRow:
    return AuditRow(job_id=job_id, email_id="e", received_at=datetime.now(UTC), route="submitted")


@pytest.fixture
def world(ledger: Ledger, tmp_path: Path) -> Iterator[World]:
    yield World(ledger, tmp_path)


@pytest.fixture
def clean(world: World) -> World:
    """Every kind of job at rest or fresh, plus mail recorded by the real intake."""
    email_id = new_email(world.ledger)
    world.finished_job(email_id=email_id, part_index=2)
    world.finished_job(email_id=email_id, part_index=3)
    world.finished_job()
    world.job_in("needs_review")
    world.job_in("rejected")
    world.job_in("ready")
    world.job_in("failed@submitting")
    new_job(world.ledger, skip_reason="tiny_inline_image")
    new_job(world.ledger, part_index=-1, review_reason="malformed_message")
    world.receive_mail("01_clinic_en_subject.eml", TWO_PARTS, "09_claim_form_only.eml")
    return world


def _only(verdict: Verdict, code: str) -> tuple[str, ...]:
    """The ids of the one breach ``verdict`` holds, which must carry ``code``."""
    assert [b.code for b in verdict.breaches] == [code], verdict.to_dict()
    return verdict.breaches[0].ids


@pytest.mark.both_databases  # its subject is SQL: raw states, counts, time
def test_a_clean_pipeline_state_passes(clean: World) -> None:
    verdict = clean.check()

    assert verdict.ok, verdict.to_dict()
    assert verdict.checked["done_jobs"] == 3
    assert verdict.checked["audit_rows"] == 3
    assert verdict.checked["ncb_claims"] == 3
    assert verdict.checked["done_emails"] == 3
    assert verdict.checked["emails"] == clean.ledger.summary().emails
    assert len(list_done_emails(clean.inbox)) == 3  # the check moved nothing


@pytest.mark.both_databases  # its subject is SQL: raw states, counts, time
def test_no_schema_is_a_breach(empty_ledger_url: str, tmp_path: Path) -> None:
    with Ledger(empty_ledger_url) as unmigrated:
        verdict = check_invariants(
            unmigrated,
            audit=CsvAuditLog(tmp_path / "audit.csv"),
            archive=LocalArchive(tmp_path / "archive"),
            deadlines=DEADLINES,
        )
    assert _only(verdict, "ledger_schema_missing") == ()


@pytest.mark.both_databases  # its subject is SQL: raw states, counts, time
def test_a_job_stuck_in_submitting_past_its_deadline(clean: World) -> None:
    stuck = clean.job_in("submitting")
    assert clean.check().ok  # just claimed: not late

    later = datetime.now(UTC) + timedelta(seconds=661)
    deadlines = default_deadlines(1200, 30, submit_stale_after_s=600)
    assert clean.check(now=later - timedelta(seconds=2), deadlines=deadlines).ok
    verdict = clean.check(now=later, deadlines={JobState.SUBMITTING: deadlines["submitting"]})

    assert _only(verdict, "job_overdue") == (stuck,)
    assert "submitting" in verdict.breaches[0].message


def test_every_working_state_has_a_deadline_and_ready_may_wait_for_ncb(clean: World) -> None:
    later = datetime.now(UTC) + LATER
    overdue = clean.check(now=later)
    late = {b.message.split(" in ")[1].split()[0] for b in overdue.breaches}
    assert overdue.codes == {"job_overdue"}
    assert late == {"received", "ready"}  # the fresh intake jobs and the ready one

    held = clean.check(now=later, ready_held=True)
    assert "ready" not in " ".join(b.message for b in held.breaches)
    assert held.checked["ready_held_by_breaker"] == 1


def test_a_claim_ncb_holds_twice(clean: World) -> None:
    job_id = clean.claims[0]["idempotency_key"]
    clean.claims.append({"idempotency_key": job_id, "claim_reference": "CLM-1"})

    assert _only(clean.check(), "ncb_claim_duplicated") == (job_id,)


def test_a_submitted_job_ncb_does_not_hold_and_a_claim_no_job_sent(clean: World) -> None:
    lost = clean.claims.pop()["idempotency_key"]
    assert _only(clean.check(), "ncb_claim_missing") == (lost,)

    clean.claims.append({"idempotency_key": lost})
    never_sent = clean.job_in("ocr_pending")
    maybe_sent = clean.job_in("ready")  # an interrupted submission NCB may have taken
    clean.claims += [{"idempotency_key": k} for k in ("not-a-job", never_sent, maybe_sent)]

    assert _only(clean.check(), "ncb_claim_without_job") == tuple(sorted(["not-a-job", never_sent]))


def test_a_done_job_with_no_audit_row(clean: World) -> None:
    job_id = new_job(clean.ledger)
    drive(clean.ledger, job_id, "submitted")
    clean.claims.append({"idempotency_key": job_id})
    clean.archive.store(job_id, "receipt.jpg", b"receipt", datetime.now(UTC))
    assert clean.check().ok  # submitted, finalize not done yet: fine

    clean.ledger.mark_done(job_id)
    assert _only(clean.check(), "audit_row_missing") == (job_id,)


def test_two_audit_rows_for_one_job(clean: World) -> None:
    job_id = clean.claims[0]["idempotency_key"]
    with clean.audit.path.open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(audit_row(job_id).to_cells())

    assert _only(clean.check(), "audit_row_duplicated") == (job_id,)


def test_an_audit_row_for_a_job_that_is_not_done(clean: World) -> None:
    in_review = clean.job_in("needs_review")
    finalizing = clean.job_in("submitted")
    clean.claims.append({"idempotency_key": finalizing})
    clean.audit.append(audit_row(finalizing))  # audited just before mark_done: fine
    clean.audit.append(audit_row(in_review))

    assert _only(clean.check(), "audit_row_unexpected") == (in_review,)


def test_a_done_job_with_no_archive_file(clean: World) -> None:
    job_id = new_job(clean.ledger)
    drive(clean.ledger, job_id, "done")
    clean.claims.append({"idempotency_key": job_id})
    clean.audit.append(audit_row(job_id))

    assert _only(clean.check(), "archive_file_missing") == (job_id,)


def test_a_done_email_whose_attachment_was_never_recorded(world: World) -> None:
    raw = (SAMPLE_INBOX_DIR / TWO_PARTS).read_bytes()
    parts = [a.part_index for a in parse_email(raw, source="folder", source_id="x").attachments]
    assert len(parts) == 2
    (world.inbox / "done").mkdir()
    (world.inbox / "done" / "claim.eml").write_bytes(raw)  # marked done by the source
    email_id = new_email(world.ledger, "claim.eml", source="folder")
    new_job(world.ledger, email_id=email_id, part_index=parts[0])  # the second one was lost

    assert _only(world.check(), "done_email_attachment_missing") == (email_id,)

    new_job(world.ledger, email_id=email_id, part_index=parts[1])
    assert world.check().ok


def test_a_done_email_the_ledger_never_saw(clean: World) -> None:
    shutil.copy2(SAMPLE_INBOX_DIR / "02_pharmacy_ms_body.eml", clean.inbox / "done" / "Ann.eml")

    ids = _only(clean.check(), "done_email_not_recorded")
    assert len(ids) == 1 and ids[0].startswith("sha256:")  # never the file name


def test_an_unreadable_done_email_needs_its_whole_email_job(world: World) -> None:
    (world.inbox / "done").mkdir()
    (world.inbox / "done" / "big.eml").write_bytes(b"Subject: x\r\n\r\n" + b"x" * 4096)
    email_id = new_email(world.ledger, "big.eml", source="folder")
    check = {"max_email_bytes": 1024}
    assert _only(world.check(**check), "done_email_attachment_missing") == (email_id,)

    new_job(world.ledger, email_id=email_id, part_index=-1, review_reason="email_too_large")
    assert world.check(**check).ok


def test_a_renamed_done_file_is_matched_by_its_first_name(world: World) -> None:
    """A folder source keeps a second ``x.eml`` as ``done/x.1.eml``."""
    world.receive_mail("01_clinic_en_subject.eml")
    done = world.inbox / "done"
    (done / "01_clinic_en_subject.eml").rename(done / "01_clinic_en_subject.1.eml")

    assert [d.alias for d in list_done_emails(world.inbox)] == ["01_clinic_en_subject.eml"]
    assert world.check().ok


def test_a_maildir_lists_only_seen_messages_in_cur(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    for name in ("new/a", "cur/b:2,", "cur/c:2,RS", "cur/.d:2,S"):
        (tmp_path / name).write_bytes(b"Subject: x\r\n\r\n")

    assert list_done_emails(tmp_path) == [DoneEmail("maildir", "c", tmp_path / "cur" / "c:2,RS")]


@pytest.mark.both_databases  # its subject is SQL: raw states, counts, time
def test_an_email_whose_attachment_count_does_not_match_its_jobs(clean: World) -> None:
    email_id = new_email(clean.ledger)
    new_job(clean.ledger, email_id=email_id, part_index=2)
    new_job(clean.ledger, email_id=email_id, part_index=-1, review_reason="failed_upload")
    assert clean.check().ok  # the whole-email job counts too, as the ledger counts it

    with clean.ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE emails SET attachment_count = 3 WHERE id = :id"), {"id": email_id}
        )
    assert _only(clean.check(), "attachment_count_mismatch") == (email_id,)


@pytest.mark.both_databases  # its subject is SQL: raw states, counts, time
def test_a_job_in_a_state_the_pipeline_does_not_know(clean: World) -> None:
    job_id = clean.job_in("received")
    with clean.ledger.engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET state = 'lost' WHERE id = :id"), {"id": job_id})

    assert _only(clean.check(), "job_state_unknown") == (job_id,)


# -- claims-ocr check ----------------------------------------------------------------------


def _cli(cwd: Path, *args: str, data: Path) -> subprocess.CompletedProcess[str]:
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NCB_", "MAIL", "CLAIMS_OCR_", "DATABASE_URL", "CELERY_", "AUDIT_"))
        and k not in {"ARCHIVE_DIR", "BLOB_DIR"}
    }
    env = {
        **clean_env,
        "CLAIMS_OCR_ENV": "demo",
        "CLAIMS_OCR_DATA_DIR": str(data),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # no breaker state to read: circuit closed
        "LOG_LEVEL": "ERROR",
    }
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "check", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes, but the ledger's (SQLite may checkpoint its WAL on close)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("ledger.db")
    }


def test_cli_exits_0_on_a_clean_ledger_and_1_after_a_breach(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with Ledger(f"sqlite:///{data / 'ledger.db'}") as ledger:
        ledger.migrate()
        world = World(ledger, data)
        world.finished_job()
        world.receive_mail("01_clinic_en_subject.eml", TWO_PARTS)
        record = data / "ncb-standin.jsonl"
        record.write_text("".join(json.dumps(c) + "\n" for c in world.claims))
        summary = ledger.summary()

        before = _files(data)
        ok = _cli(tmp_path, "--ncb-record", str(record), data=data)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK: every invariant holds")
        assert _files(data) == before and ledger.summary() == summary  # read-only

        job_id = new_job(ledger)
        drive(ledger, job_id, "done")  # done, but never archived, audited or sent
        broken = _cli(tmp_path, "--ncb-record", str(record), data=data)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        for code in ("ncb_claim_missing", "audit_row_missing", "archive_file_missing"):
            assert f"  {code} 1: " in broken.stdout and job_id in broken.stdout

        as_json = _cli(tmp_path, "--json", data=data)
        assert as_json.returncode == 1
        verdict = json.loads(as_json.stdout)
        assert verdict["ok"] is False and "ncb_claims" not in verdict["checked"]
        assert {b["code"] for b in verdict["breaches"]} == {
            "audit_row_missing",
            "archive_file_missing",
        }


def test_cli_reports_a_missing_ledger_without_creating_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _cli(tmp_path, "--json", data=data)

    assert result.returncode == 1, result.stderr
    assert [b["code"] for b in json.loads(result.stdout)["breaches"]] == ["ledger_schema_missing"]
    assert not data.exists()


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--ncb-record", str(tmp_path / "nope.jsonl"), data=tmp_path)
    assert result.returncode == 2
    assert "no such NCB record file" in result.stderr
