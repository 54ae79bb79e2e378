"""Google credentials against the stand-in's OAuth endpoints, over real HTTP."""

from __future__ import annotations

import json
import stat
import threading
import webbrowser
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from services.demo.ncb_standin import StandinServer
from services.google.auth import (
    ALL_SCOPES,
    GMAIL_SCOPES,
    GoogleAuthError,
    PersistedCredentials,
    classify_refresh_error,
    load_credentials,
    run_installed_app_flow,
)
from tests.support.google_standin import (
    gmail_service,
    oauth_store,
)

BROWSER = "claims-ocr-test-consent"


class _ConsentingBrowser(webbrowser.BaseBrowser):
    """Opens the consent URL like a person who clicks "Allow": GET, follow the redirect.

    In a thread: the flow starts serving its redirect only after ``open`` returns.
    """

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        def click() -> None:
            httpx.get(url, follow_redirects=True, timeout=10)

        threading.Thread(target=click, daemon=True).start()
        return True


@pytest.fixture
def consenting_browser(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in is plain HTTP
    webbrowser.register(BROWSER, None, _ConsentingBrowser(BROWSER))
    return BROWSER


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _client_secrets(tmp_path: Path) -> Path:
    path = tmp_path / "client.json"
    client = {
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "not-secret",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"],
    }
    path.write_text(json.dumps({"installed": client}))
    return path


def _expire(creds: PersistedCredentials) -> None:
    creds.expiry = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)


def test_installed_app_flow_writes_a_private_token_that_refreshes(
    google_standin: StandinServer,
    consenting_browser: str,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "secrets" / "google-token.json"
    token_uri = f"{google_standin.url}/token"

    creds = run_installed_app_flow(
        _client_secrets(tmp_path),
        token_file,
        ALL_SCOPES,
        auth_uri=f"{google_standin.url}/o/oauth2/auth",
        token_uri=token_uri,
        browser=consenting_browser,
    )

    assert creds.refresh_token and creds.token
    assert _mode(token_file) == 0o600 and _mode(token_file.parent) == 0o700
    saved = json.loads(token_file.read_text())
    assert saved["refresh_token"] == creds.refresh_token
    assert set(saved["scopes"]) == set(ALL_SCOPES)

    oauth = oauth_store(google_standin)
    oauth.open = False  # from here on only tokens the stand-in issued work
    loaded = load_credentials(
        credentials_file=None, token_file=token_file, scopes=GMAIL_SCOPES, token_uri=token_uri
    )
    assert isinstance(loaded, PersistedCredentials)
    _expire(loaded)
    profile = gmail_service(google_standin, loaded).users().getProfile(userId="me").execute()
    assert profile["emailAddress"]

    rewritten = json.loads(token_file.read_text())
    assert rewritten["token"] == loaded.token != saved["token"]
    assert rewritten["refresh_token"] == saved["refresh_token"]
    assert _mode(token_file) == 0o600
    assert [p.name for p in token_file.parent.iterdir()] == [token_file.name]  # no temp left

    oauth.revoke(saved["refresh_token"])
    _expire(loaded)
    with pytest.raises(google.auth.exceptions.RefreshError) as refused:
        loaded.refresh(google.auth.transport.requests.Request())
    classified = classify_refresh_error(refused.value)
    assert classified.status == "auth_revoked"
    assert "claims-ocr google-auth" in str(classified)


def test_service_account_with_delegation_refreshes_against_the_standin(
    google_standin: StandinServer,
    tmp_path: Path,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "claims",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "poller@claims.iam.gserviceaccount.com",
                "client_id": "1234",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    oauth = oauth_store(google_standin)
    oauth.open = False

    creds = load_credentials(
        credentials_file=key_file,
        token_file=None,
        scopes=GMAIL_SCOPES,
        delegated_user="claims@example.com",
        token_uri=f"{google_standin.url}/token",
    )

    assert isinstance(creds, service_account.Credentials)
    profile = gmail_service(google_standin, creds).users().getProfile(userId="me").execute()
    assert profile["historyId"]
    assert oauth.jwt_subjects == ["claims@example.com"]
    assert creds.token in oauth.access_tokens


def test_missing_or_wrong_files_are_misconfigured(tmp_path: Path) -> None:
    with pytest.raises(GoogleAuthError) as unset:
        load_credentials(credentials_file=None, token_file=None, scopes=GMAIL_SCOPES)
    assert unset.value.status == "misconfigured"
    assert "GOOGLE_TOKEN_FILE" in str(unset.value) and "claims-ocr google-auth" in str(unset.value)

    missing = tmp_path / "token.json"
    with pytest.raises(GoogleAuthError) as absent:
        load_credentials(credentials_file=None, token_file=missing, scopes=GMAIL_SCOPES)
    assert absent.value.status == "misconfigured" and "claims-ocr google-auth" in str(absent.value)

    missing.write_text("{not json")
    with pytest.raises(GoogleAuthError) as garbled:
        load_credentials(credentials_file=None, token_file=missing, scopes=GMAIL_SCOPES)
    assert garbled.value.status == "misconfigured"

    narrow = {
        "refresh_token": "r",
        "client_id": "c",
        "client_secret": "s",
        "scopes": list(GMAIL_SCOPES),
    }
    missing.write_text(json.dumps(narrow))
    with pytest.raises(GoogleAuthError) as lacking:
        load_credentials(credentials_file=None, token_file=missing, scopes=ALL_SCOPES)
    assert "drive" in str(lacking.value)

    with pytest.raises(GoogleAuthError) as delegation:
        load_credentials(
            credentials_file=None,
            token_file=missing,
            scopes=GMAIL_SCOPES,
            delegated_user="someone@example.com",
        )
    assert delegation.value.status == "misconfigured"

    with pytest.raises(GoogleAuthError) as no_client:
        run_installed_app_flow(tmp_path / "nope.json", tmp_path / "t.json", GMAIL_SCOPES)
    assert no_client.value.status == "misconfigured"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            "auth_revoked",
        ),
        ({"error": "invalid_client"}, "misconfigured"),
        ({"error": "internal_failure"}, "unavailable"),
    ],
)
def test_classify_refresh_error(error: dict[str, str], status: str) -> None:
    exc = google.auth.exceptions.RefreshError(f"{error['error']}: ...", error)
    assert classify_refresh_error(exc).status == status
