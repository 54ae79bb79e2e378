"""Start-up: production refuses settings that would fake or lose claims; the demo does not.

``claims-ocr run`` is started for real (a subprocess with its own environment); the
refusals come before any process, stand-in or data file is started or written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from services.config import Settings
from services.demo import SAMPLE_INBOX_DIR
from services.preflight import production_warnings, redact_url, startup_problems
from workers.app import QUEUES
from workers.runner import declare_queues, demo_broker

DEAD_REDIS = "redis://:secret@127.0.0.1:1/0"


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NCB_", "MAIL", "CLAIMS_OCR_", "DATABASE_URL", "CELERY_", "OCR_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env={**clean, "REDIS_URL": DEAD_REDIS, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_without_ncb_mailbox_or_redis_refuses_naming_each(tmp_path: Path) -> None:
    result = _cli(tmp_path, "run", "--once")
    assert result.returncode == 2
    err = result.stderr
    assert "refusing to start in production" in err
    for named in ("NCB_API_BASE_URL", "NCB_API_KEY", "MAILDIR_PATH", "Redis at"):
        assert named in err, f"{named} not named in:\n{err}"
    assert "secret" not in err  # the broker URL's password is not printed
    assert "claims-ocr run --demo" in err
    assert not (tmp_path / "data").exists(), "something was started or written"


def test_invalid_settings_are_all_named_before_anything_runs(tmp_path: Path) -> None:
    result = _cli(tmp_path, "run", "--demo", "--once", MAIL_SOURCE="pop3", LOG_LEVEL="LOUD")
    assert result.returncode == 2
    assert "2 setting(s) are not valid" in result.stderr
    assert "MAIL_SOURCE" in result.stderr and "LOG_LEVEL" in result.stderr
    assert not (tmp_path / "data").exists()


def _production(tmp_path: Path, **overrides: object) -> Settings:
    inbox = tmp_path / "mailbox"
    inbox.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "CLAIMS_OCR_DATA_DIR": tmp_path / "data",
        "NCB_API_BASE_URL": "https://ncb.example.com/api",
        "NCB_API_KEY": "a-real-key",
        "MAILDIR_PATH": inbox,
        "DATABASE_URL": "postgresql+psycopg://claims@db/claims",
        "REDIS_URL": "redis://redis:6379/0",
    }
    return Settings(**{**values, **overrides})


def test_a_complete_production_configuration_passes(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    assert startup_problems(settings, broker_answers=True) == []
    assert production_warnings(settings) == []


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"NCB_API_BASE_URL": ""}, "NCB_API_BASE_URL is empty"),
        ({"NCB_API_BASE_URL": "ncb.example.com"}, "http(s)"),
        ({"NCB_API_KEY": "standin-key"}, "NCB_API_KEY"),
        ({"MAILDIR_PATH": SAMPLE_INBOX_DIR}, "bundled sample inbox"),
        ({"MAILDIR_PATH": "/no/such/folder"}, "is not a folder"),
        ({"CELERY_BROKER_URL": "sqla+sqlite:///broker.db"}, "must be Redis"),
        ({"OCR_DEVICE": "cuda"}, "CUDAExecutionProvider"),
    ],
)
def test_each_production_problem_is_named(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    problems = startup_problems(_production(tmp_path, **overrides), broker_answers=True)
    assert len(problems) == 1 and named in problems[0], problems


def test_demo_needs_no_credentials_but_still_checks_features(tmp_path: Path) -> None:
    demo = Settings(CLAIMS_OCR_ENV="demo", CLAIMS_OCR_DATA_DIR=tmp_path, NCB_API_BASE_URL="")
    assert startup_problems(demo, broker_answers=False) == []
    gpu = demo.model_copy(update={"ocr_device": "cuda"})
    assert startup_problems(gpu, broker_answers=False)


def test_sqlite_in_production_is_allowed_with_a_warning(tmp_path: Path) -> None:
    settings = _production(tmp_path, DATABASE_URL="")
    assert startup_problems(settings, broker_answers=True) == []
    assert "SQLite" in production_warnings(settings)[0]


def test_broker_passwords_are_redacted() -> None:
    assert redact_url("redis://:pw@redis:6379/0") == "redis://***@redis:6379/0"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"


def _google(tmp_path: Path, kind: str, **overrides: object) -> Settings:
    """A Gmail + Sheets + Drive production configuration with a service account or an
    installed-app client."""
    creds = tmp_path / "google.json"
    body = {"type": "service_account"} if kind == "service_account" else {"installed": {}}
    creds.write_text(json.dumps(body))
    values: dict[str, object] = {
        "MAIL_SOURCE": "gmail",
        "AUDIT_SINK": "sheets",
        "ARCHIVE_SINK": "drive",
        "GOOGLE_CREDENTIALS_FILE": creds,
        "SHEETS_SPREADSHEET_ID": "sheet-id",
        "DRIVE_FOLDER_ID": "folder-id",
    }
    return _production(tmp_path, **{**values, **overrides})


def test_a_complete_google_configuration_passes(tmp_path: Path) -> None:
    assert startup_problems(_google(tmp_path, "service_account"), broker_answers=True) == []
    token = tmp_path / "token.json"
    token.write_text("{}")
    client = _google(tmp_path, "installed", GOOGLE_TOKEN_FILE=token)
    assert startup_problems(client, broker_answers=True) == []


@pytest.mark.parametrize(
    ("kind", "overrides", "named"),
    [
        ("installed", {}, "claims-ocr google-auth"),  # no token written yet
        ("service_account", {"GOOGLE_CREDENTIALS_FILE": None}, "GOOGLE_CREDENTIALS_FILE"),
        ("service_account", {"GOOGLE_CREDENTIALS_FILE": "/no/such.json"}, "is not a file"),
        ("service_account", {"SHEETS_SPREADSHEET_ID": ""}, "sheets-init"),
        ("service_account", {"DRIVE_FOLDER_ID": ""}, "DRIVE_FOLDER_ID"),
        ("service_account", {"GOOGLE_API_ROOT_URL": "http://127.0.0.1:1"}, "stand-in"),
    ],
)
def test_each_google_problem_is_named(
    tmp_path: Path, kind: str, overrides: dict[str, object], named: str
) -> None:
    problems = startup_problems(_google(tmp_path, kind, **overrides), broker_answers=True)
    assert len(problems) == 1 and named in problems[0], problems


def test_imap_needs_its_server_login_and_a_real_ca_file(tmp_path: Path) -> None:
    imap = {"MAIL_SOURCE": "imap", "IMAP_HOST": "imap.example.com", "IMAP_USER": "claims"}
    problems = startup_problems(
        _production(tmp_path, **imap, IMAP_CA_FILE="/no/ca.pem"), broker_answers=True
    )
    assert problems == [
        "MAIL_SOURCE=imap, but IMAP_PASSWORD is not set.",
        "IMAP_CA_FILE=/no/ca.pem is not a file.",
    ]
    complete = _production(tmp_path, **imap, IMAP_PASSWORD="pw")
    assert startup_problems(complete, broker_answers=True) == []


def _declare_all(url: str) -> str:
    """One worker's first use of the embedded broker (what its consumer and producer do)."""
    try:
        declare_queues(url)
    except Exception as exc:  # the failure is what the test reports
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_the_embedded_broker_is_made_before_any_worker_uses_it(tmp_path: Path) -> None:
    """Four processes creating kombu's queue rows at once on a new file raced (a UNIQUE
    constraint error killed one consumer); the demo's parent now makes them first."""
    for attempt in range(5):
        # A new folder each time: kombu makes the tables once per file and process, and a
        # first run finds no data folder yet.
        data_dir = tmp_path / str(attempt)
        settings = Settings(
            CLAIMS_OCR_ENV="demo", CLAIMS_OCR_DATA_DIR=data_dir, REDIS_URL=DEAD_REDIS
        )
        url = demo_broker(settings)
        with sqlite3.connect(data_dir / "broker.sqlite") as db:
            queues = {name for (name,) in db.execute("SELECT name FROM kombu_queue")}
        assert queues == set(QUEUES)
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            assert pool.map(_declare_all, [url] * 4) == ["ok"] * 4
