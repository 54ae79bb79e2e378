"""The operator commands, run as an operator runs them: ``claims-ocr doctor``,
``sheets-init`` and ``send-test-claim`` in their own process, against the Google
stand-in (real client libraries over HTTP), a private Dovecot, the NCB stand-in and Redis.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials

from services.demo.google_demo import FOLDER_TYPE
from services.demo.google_standin.gmail import store_of as gmail_store_of
from services.demo.google_standin.sheets import store_of as sheets_store_of
from services.demo.ncb_standin import StandinServer
from services.google.discovery import build_service
from services.records.sheets import create_spreadsheet, sheets_client
from tests.support.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parents[2]
NCB_KEY = "doctor-test-key"


@pytest.fixture
def ncb() -> Iterator[StandinServer]:
    with StandinServer(api_key=NCB_KEY) as server:
        yield server


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def base_env(tmp_path: Path, redis_url: str, ncb: StandinServer, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CLAIMS_OCR_ENV": "demo",  # the stand-in's fake token; production wants real ones
        "CLAIMS_OCR_DATA_DIR": str(tmp_path / "data"),
        "REDIS_URL": redis_url,
        "NCB_API_BASE_URL": ncb.url,
        "NCB_API_KEY": NCB_KEY,
    }
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


@pytest.fixture
def google_env(
    tmp_path: Path, redis_url: str, ncb: StandinServer, google_standin: StandinServer
) -> dict[str, str]:
    creds = Credentials(token="ops")
    folder = (
        build_service("drive", "v3", creds, google_standin.url)
        .files()
        .create(body={"name": "archive", "mimeType": FOLDER_TYPE}, fields="id")
        .execute()
    )
    return base_env(
        tmp_path,
        redis_url,
        ncb,
        MAIL_SOURCE="gmail",
        AUDIT_SINK="sheets",
        ARCHIVE_SINK="drive",
        GOOGLE_API_ROOT_URL=google_standin.url,
        GOOGLE_NUM_RETRIES="0",
        SHEETS_SPREADSHEET_ID=create_spreadsheet(sheets_client(creds, google_standin.url), "a"),
        DRIVE_FOLDER_ID=folder["id"],
    )


def test_doctor_passes_when_everything_answers(google_env: dict[str, str]) -> None:
    # The ledger is migrated by `run`; `check` of a fresh one would say so: migrate first.
    assert cli(google_env, "review", "list").returncode == 0
    done = cli(google_env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    names = ["ledger", "broker", "mailbox (gmail)", "audit log (sheets)", "archive (drive)", "NCB"]
    assert [line.split(":")[0].split(None, 1)[1] for line in lines] == names
    assert all(line.startswith("ok") for line in lines)


def test_doctor_names_what_is_wrong(google_env: dict[str, str], ncb: StandinServer) -> None:
    env = {**google_env, "SHEETS_SPREADSHEET_ID": "no-such-sheet", "NCB_API_KEY": "wrong"}
    done = cli(env, "doctor")
    assert done.returncode == 1
    failed = {line.split(":")[0].split(None, 1)[1]: line for line in done.stdout.splitlines()}
    assert failed["audit log (sheets)"].startswith("FAIL")
    assert "no-such-sheet" in failed["audit log (sheets)"]
    assert failed["NCB"].startswith("FAIL") and "NCB_API_KEY" in failed["NCB"]
    assert failed["mailbox (gmail)"].startswith("ok")
    assert ncb.state.claims == []  # the key probe files nothing


def test_sheets_init_creates_the_audit_spreadsheet(
    google_env: dict[str, str], google_standin: StandinServer
) -> None:
    done = cli(google_env, "sheets-init", "--title", "Claims audit")
    assert done.returncode == 0, done.stderr
    spreadsheet_id = done.stdout.strip()
    sheets = sheets_store_of(google_standin.app.state.standin)
    (tab,) = sheets.tabs(spreadsheet_id)
    assert tab.startswith("Audit ") and sheets.rows(spreadsheet_id, tab)[0][0] == "job_id"


def test_send_test_claim_into_gmail(
    google_env: dict[str, str], google_standin: StandinServer
) -> None:
    gmail = gmail_store_of(google_standin.app.state.standin)
    done = cli(google_env, "send-test-claim", "--to", "claims@insurer.example")
    assert done.returncode == 0, done.stderr
    (message_id,) = gmail.message_ids()
    assert "INBOX" in gmail.labels_of(message_id)
    message = gmail.get(message_id)
    assert message is not None
    parsed = email.message_from_bytes(message.raw)
    assert parsed["To"] == "claims@insurer.example"
    assert any(part.get_filename() for part in parsed.walk())


def test_doctor_and_send_test_claim_over_imap(
    tmp_path: Path, redis_url: str, ncb: StandinServer, dovecot: DovecotServer
) -> None:
    env = base_env(
        tmp_path,
        redis_url,
        ncb,
        **dovecot.settings_env(),
    )
    assert cli(env, "review", "list").returncode == 0
    done = cli(env, "doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli(env, "send-test-claim").returncode == 0
    assert len(dovecot.flags()) == 1

    wrong = cli({**env, "IMAP_PASSWORD": "wrong"}, "doctor")
    assert wrong.returncode == 1
    assert any(line.startswith("FAIL  mailbox (imap)") for line in wrong.stdout.splitlines())
