"""Fixtures and helpers for tests against the Google stand-in over real HTTP.

A pytest plugin (``tests/conftest.py`` loads it): the fixtures are there in every test.
The real Google client libraries talk HTTP to the stand-in on 127.0.0.1; the
credentials are a fake bearer token that never refreshes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import googleapiclient.http
import pytest
from google.oauth2.credentials import Credentials

from services.demo.google_standin import create_app
from services.demo.google_standin.drive import DriveStore
from services.demo.google_standin.drive import store_of as drive_store_of
from services.demo.google_standin.gmail import GmailStore
from services.demo.google_standin.gmail import store_of as gmail_store_of
from services.demo.google_standin.oauth import OAuthStore
from services.demo.google_standin.oauth import store_of as oauth_store_of
from services.demo.google_standin.sheets import SheetsStore
from services.demo.google_standin.sheets import store_of as sheets_store_of
from services.demo.google_standin.state import GoogleStandinState
from services.demo.ncb_standin import StandinServer
from services.google.discovery import build_service
from services.records.sheets import sheets_client


@pytest.fixture
def google_standin() -> Iterator[StandinServer]:
    """The Google stand-in, started on a free port for one test."""
    server = StandinServer(app=create_app()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def google_state(google_standin: StandinServer) -> GoogleStandinState:
    return standin_state(google_standin)


@pytest.fixture
def sheets_store(google_state: GoogleStandinState) -> SheetsStore:
    return sheets_store_of(google_state)


@pytest.fixture
def drive_store(google_state: GoogleStandinState) -> DriveStore:
    return drive_store_of(google_state)


@pytest.fixture
def fake_credentials() -> Credentials:
    return Credentials(token="fake")


@pytest.fixture
def gspread_client(google_standin: StandinServer, fake_credentials: Credentials) -> Any:
    return sheets_client(fake_credentials, google_standin.url, timeout_s=10)


@pytest.fixture
def drive_service(google_standin: StandinServer, fake_credentials: Credentials) -> Any:
    return build_service("drive", "v3", fake_credentials, google_standin.url)


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """googleapiclient's (and the archive's) retry waits become zero.

    Both draw the wait as ``random.random() * 2**n``; the library binds
    ``random.random`` when a request is built, so this must run before that.
    """
    monkeypatch.setattr(random, "random", lambda: 0.0)


@pytest.fixture
def backoff_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """googleapiclient's retry sleeps, recorded instead of slept (its module's clock only)."""
    waits: list[float] = []

    class _Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)

    monkeypatch.setattr(googleapiclient.http, "time", _Clock())
    return waits


def standin_state(server: StandinServer) -> GoogleStandinState:
    state = server.app.state.standin
    assert isinstance(state, GoogleStandinState)
    return state


def gmail_store(server: StandinServer) -> GmailStore:
    return gmail_store_of(standin_state(server))


def oauth_store(server: StandinServer) -> OAuthStore:
    return oauth_store_of(standin_state(server))


def gmail_service(server: StandinServer, credentials: Any = None) -> Any:
    """A real Gmail v1 client pointed at the stand-in (a fake bearer token by default)."""
    return build_service("gmail", "v1", credentials or Credentials(token="fake"), server.url)


def claim_email(n: int, *, attachment: bool = True, attachment_bytes: int = 200) -> bytes:
    """A small RFC 5322 email, with a PDF attachment unless told otherwise."""
    msg = EmailMessage()
    msg["From"] = f"member{n}@example.org"
    msg["To"] = "claims@example.com"
    msg["Subject"] = f"claim {n}"
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(f"claim number {n}, receipt attached")
    if attachment:
        body = b"%PDF-1.4\n" + b"0" * attachment_bytes
        msg.add_attachment(body, maintype="application", subtype="pdf", filename=f"r{n}.pdf")
    return msg.as_bytes()


class DictCursors:
    """An in-memory ``CursorStore`` (the ledger's stands in production)."""

    def __init__(self) -> None:
        self.cursors: dict[str, str] = {}
        self.writes = 0

    def get_cursor(self, source: str) -> str | None:
        return self.cursors.get(source)

    def set_cursor(self, source: str, cursor: str) -> None:
        self.cursors[source] = cursor
        self.writes += 1
