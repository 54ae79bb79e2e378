"""Credentials for Gmail, Sheets and Drive: a service account, or a user's OAuth token.

Two ways to authorise, chosen by what the credentials file is:

- a service-account key (``"type": "service_account"``), optionally acting for a
  Workspace user through domain-wide delegation (``delegated_user``);
- an OAuth client (``"installed"``), authorised once by a person with
  ``claims-ocr google-auth`` (:func:`run_installed_app_flow`), which writes a token file
  holding the refresh token. Every later refresh rewrites that file (owner-only,
  atomically), so the newest access token survives a restart.

``token_uri`` (and ``auth_uri`` for the flow) move the OAuth endpoints to the stand-in;
empty means Google. google-auth resets ``token_uri`` to Google's when it reads a token
file, so the override is applied after loading.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
import google.oauth2.credentials
import google.oauth2.service_account
from google_auth_oauthlib.flow import InstalledAppFlow

from services.logs import get_logger
from services.mail.source import MailSourceError
from services.private_files import PRIVATE_FILE, private_dirs

log = get_logger(__name__)

GMAIL_SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/gmail.modify",)
SHEETS_SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/spreadsheets",)
# drive.file only reaches files the app created: not enough for an existing folder.
DRIVE_SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/drive",)
ALL_SCOPES: tuple[str, ...] = GMAIL_SCOPES + SHEETS_SCOPES + DRIVE_SCOPES

#: The settings and command the error messages point operators to.
CREDENTIALS_SETTING = "GOOGLE_CREDENTIALS_FILE"
TOKEN_SETTING = "GOOGLE_TOKEN_FILE"
AUTH_COMMAND = "claims-ocr google-auth"

REVOKED_MESSAGE = f"the Google refresh token was revoked or expired: run `{AUTH_COMMAND}` again"


class GoogleAuthError(MailSourceError):
    """Google credentials are missing, unusable or revoked (``status`` says which)."""


def classify_refresh_error(exc: google.auth.exceptions.RefreshError) -> MailSourceError:
    """What a failed token refresh means for the source's health.

    ``invalid_grant`` is Google's answer to a revoked or expired refresh token (and to a
    service account whose key was deleted): only a person can fix it. Credentials that
    cannot refresh at all (no refresh token) need the same fix. A client that Google no
    longer knows is a configuration fault; anything else (a 5xx from the token endpoint)
    may pass.
    """
    error = _oauth_error(exc)
    if error == "invalid_grant" or "necessary fields" in str(exc):
        return GoogleAuthError("auth_revoked", REVOKED_MESSAGE)
    if error in ("invalid_client", "unauthorized_client", "invalid_scope"):
        return GoogleAuthError(
            "misconfigured",
            f"Google refused the OAuth client ({error}): check {CREDENTIALS_SETTING} "
            f"and run `{AUTH_COMMAND}` again",
        )
    return GoogleAuthError("unavailable", f"the Google token refresh failed ({error or 'error'})")


def _oauth_error(exc: google.auth.exceptions.RefreshError) -> str:
    """The OAuth ``error`` code of a refresh failure, if the reply carried one."""
    for arg in exc.args[1:]:
        if isinstance(arg, dict) and isinstance(arg.get("error"), str):
            return str(arg["error"])
    text = str(exc.args[0]) if exc.args else ""
    return text.split(":", 1)[0].strip() if ":" in text else ""


class PersistedCredentials(google.oauth2.credentials.Credentials):
    """User credentials that rewrite their token file after every refresh."""

    token_file: Path | None = None

    def refresh(self, request: google.auth.transport.Request) -> None:
        super().refresh(request)
        if self.token_file is None:
            return
        try:
            write_token_file(self.token_file, self.to_json())
        except OSError as exc:
            # The new token is in memory and works; only a restart would need a refresh.
            log.warning("google token file not rewritten", error=type(exc).__name__)

    def _make_copy(self) -> PersistedCredentials:
        copy: PersistedCredentials = super()._make_copy()
        copy.token_file = self.token_file
        return copy


def write_token_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, owner-only (it holds a refresh token)."""
    private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path, setting: str, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GoogleAuthError("misconfigured", f"{setting} {path} does not exist: {fix}") from exc
    except (OSError, ValueError) as exc:
        raise GoogleAuthError(
            "misconfigured", f"{setting} {path} cannot be read ({type(exc).__name__}): {fix}"
        ) from exc
    if not isinstance(data, dict):
        raise GoogleAuthError("misconfigured", f"{setting} {path} is not a JSON object: {fix}")
    return data


def load_credentials(
    *,
    credentials_file: Path | None,
    token_file: Path | None,
    scopes: Sequence[str],
    delegated_user: str | None = None,
    token_uri: str = "",
) -> google.auth.credentials.Credentials:
    """Credentials for ``scopes``; they refresh themselves when used.

    A service-account key in ``credentials_file`` wins; otherwise the token file that
    ``claims-ocr google-auth`` wrote is used. Raises :class:`GoogleAuthError`
    (``misconfigured``) when the files are missing, unreadable or do not cover
    ``scopes``.
    """
    if credentials_file is not None:
        info = _read_json(
            credentials_file,
            CREDENTIALS_SETTING,
            "download the service-account key or OAuth client from the Google Cloud console",
        )
        if info.get("type") == "service_account":
            return _service_account(info, scopes, delegated_user, token_uri)
    if delegated_user:
        raise GoogleAuthError(
            "misconfigured",
            f"delegation to a Workspace user needs a service-account key in {CREDENTIALS_SETTING}",
        )
    if token_file is None:
        raise GoogleAuthError(
            "misconfigured",
            f"{TOKEN_SETTING} is not set: set it and run `{AUTH_COMMAND}` to create the token",
        )
    fix = f"run `{AUTH_COMMAND}` to create it"
    info = _read_json(token_file, TOKEN_SETTING, fix)
    granted = info.get("scopes") or []
    missing = sorted(set(scopes) - set(granted.split() if isinstance(granted, str) else granted))
    if granted and missing:
        raise GoogleAuthError(
            "misconfigured",
            f"the token in {TOKEN_SETTING} lacks scopes {', '.join(missing)}: "
            f"run `{AUTH_COMMAND}` again",
        )
    try:
        creds: PersistedCredentials = PersistedCredentials.from_authorized_user_info(
            info, list(scopes)
        )
    except ValueError as exc:
        raise GoogleAuthError(
            "misconfigured", f"{TOKEN_SETTING} {token_file} is not an OAuth token file: {fix}"
        ) from exc
    if token_uri:
        creds = creds.with_token_uri(token_uri)
    creds.token_file = token_file
    return creds


def _service_account(
    info: dict[str, Any], scopes: Sequence[str], delegated_user: str | None, token_uri: str
) -> google.auth.credentials.Credentials:
    if token_uri:
        info = {**info, "token_uri": token_uri}
    try:
        creds = google.oauth2.service_account.Credentials.from_service_account_info(
            info, scopes=list(scopes)
        )
    except (ValueError, KeyError) as exc:
        raise GoogleAuthError(
            "misconfigured",
            f"{CREDENTIALS_SETTING} is not a usable service-account key "
            f"({type(exc).__name__}): download a new key",
        ) from exc
    if delegated_user:
        creds = creds.with_subject(delegated_user)
    return creds


def run_installed_app_flow(
    client_secrets_file: Path,
    token_file: Path,
    scopes: Sequence[str],
    *,
    port: int = 0,
    open_browser: bool = True,
    auth_uri: str = "",
    token_uri: str = "",
    browser: str | None = None,
) -> google.oauth2.credentials.Credentials:
    """Ask a person to authorise the app in a browser; save the token file (0600).

    ``port=0`` picks a free local port for the redirect. ``open_browser=False`` prints
    the URL to open instead (a server with no browser, reached over an SSH tunnel).
    ``prompt=consent`` makes Google issue a refresh token even on a second run.
    """
    config = _read_json(
        client_secrets_file,
        CREDENTIALS_SETTING,
        "download the OAuth client (Desktop app) JSON from the Google Cloud console",
    )
    kind = "installed" if "installed" in config else "web" if "web" in config else ""
    if not kind:
        raise GoogleAuthError(
            "misconfigured",
            f"{CREDENTIALS_SETTING} {client_secrets_file} is not an OAuth client file "
            "(no 'installed' section): create a Desktop app OAuth client",
        )
    client = dict(config[kind])
    if auth_uri:
        client["auth_uri"] = auth_uri
    if token_uri:
        client["token_uri"] = token_uri
    flow = InstalledAppFlow.from_client_config({kind: client}, list(scopes))
    creds: google.oauth2.credentials.Credentials = flow.run_local_server(
        port=port,
        open_browser=open_browser,
        browser=browser,
        access_type="offline",
        prompt="consent",
    )
    if not creds.refresh_token:
        raise GoogleAuthError(
            "misconfigured",
            "Google issued no refresh token: remove the app's access at "
            f"myaccount.google.com/permissions and run `{AUTH_COMMAND}` again",
        )
    write_token_file(token_file, creds.to_json())
    log.info("google token file written", scopes=len(scopes))
    return creds
